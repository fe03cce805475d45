"""Wiring of the pretraining model: each test fails when its mechanism is broken (ITM labels and
negatives, masking before the encoder, r per image, the spiking share, order-independent eval)."""
import pytest
import torch

from models import objectives as obj
from models.gshn import spiking_share
from models.hybrid import VisualConfig, VisualEncoder
from models.pooling import masked_mean
from tests.models.test_gshn import B, C, K, _batch, _model, _nodes

pytestmark = pytest.mark.usefixtures("one_thread")


def _itm_rows(monkeypatch, model, batch, neg_txt, neg_img):
    """Run a step with planted negatives; return the (text rows, image rows) ITM saw and its labels."""
    monkeypatch.setattr(obj, "sample_hard_negatives", lambda sim, generator=None, exclude=None: (neg_txt, neg_img))
    seen = {}

    def itm_logits(ids, tmask, tokens, nmask, embeddings=None):
        seen["ids"], seen["tokens"], seen["embeddings"] = ids, tokens, embeddings
        return torch.zeros(len(ids), 2, requires_grad=True)

    def itm_loss(logits, labels):
        seen["labels"] = labels
        return logits.sum() * 0.0

    monkeypatch.setattr(model, "itm_logits", itm_logits)
    monkeypatch.setattr(obj, "itm_loss", itm_loss)
    model(batch)
    return seen


def test_itm_labels_and_which_rows_use_which_negatives(monkeypatch):
    torch.manual_seed(0)
    model = _model(("itm",)).eval()
    batch = _batch()
    vis = model.visual(batch.nodes).tokens
    neg_txt, neg_img = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 3, 0, 2])
    seen = _itm_rows(monkeypatch, model, batch, neg_txt, neg_img)
    assert seen["labels"].tolist() == [1] * B + [0] * 2 * B
    ids = batch.text_ids
    assert torch.equal(seen["ids"], torch.cat([ids, ids[neg_txt], ids]))          # image i with a wrong text
    assert torch.allclose(seen["tokens"], torch.cat([vis, vis, vis[neg_img]]))     # text i with a wrong image
    img, txt = model.itc.embed(*model.unimodal(vis, batch.nodes.node_mask, ids, batch.text_mask))
    got_img, got_txt = seen["embeddings"]                                          # each row's own pair's
    assert torch.allclose(got_img, torch.cat([img, img, img[neg_img]]), atol=1e-6)
    assert torch.allclose(got_txt, torch.cat([txt, txt[neg_txt], txt]), atol=1e-6)


def test_oracle_itm_logits_score_accuracy_one(monkeypatch):
    torch.manual_seed(0)
    model = _model(("itm",))
    batch = _batch()
    own = {tuple(r.tolist()): i for i, r in enumerate(batch.text_ids)}
    vis = model.visual.eval()(batch.nodes).tokens

    def oracle(ids, tmask, tokens, nmask, embeddings=None):      # "match" exactly for the image's own caption
        img = [int(torch.cdist(t.flatten()[None], vis.flatten(1)).argmin()) for t in tokens]
        match = torch.tensor([own[tuple(r.tolist())] == i for r, i in zip(ids, img)], dtype=torch.float)
        return torch.stack([-match, match], 1) * 5

    monkeypatch.setattr(model, "itm_logits", oracle)
    assert model.eval()(batch)["itm_acc"].item() == 1.0


def _stl_predictions(monkeypatch, model, batch, hidden):
    monkeypatch.setattr(obj, "select_stl_nodes", lambda nmask, prob=0.05, generator=None: hidden)
    got = {}

    def stl_loss(head, text_feats, text_mask, masked, targets, gamma=2.0, alpha=0.25):
        got["pred"] = head(text_feats, text_mask, masked).detach()
        return text_feats.sum() * 0.0

    monkeypatch.setattr(obj, "stl_loss", stl_loss)
    torch.manual_seed(7)                         # the same MLM masking in every call
    model(batch)
    return got["pred"]


def test_stl_predictions_ignore_the_masked_nodes_features(monkeypatch):
    torch.manual_seed(0)
    model = _model(("mlm", "stl")).eval()
    batch = _batch()
    hidden = torch.zeros(B, K, dtype=torch.bool)
    hidden[:, 0] = True                          # the largest node of every image
    before = _stl_predictions(monkeypatch, model, batch, hidden)
    batch.nodes.feats[:, 0] += 5 * torch.randn(B, C)
    assert torch.allclose(before, _stl_predictions(monkeypatch, model, batch, hidden), atol=1e-6)
    batch.nodes.feats[:, 1] += 5 * torch.randn(B, C)    # an unmasked node is context: it must matter
    assert not torch.allclose(before, _stl_predictions(monkeypatch, model, batch, hidden), atol=1e-4)


def test_mvm_predictions_ignore_the_masked_nodes_features(monkeypatch):
    torch.manual_seed(0)
    model = _model(("mlm", "mvm"), continuous="mlp").eval()
    batch = _batch()
    hidden = torch.zeros(B, K, dtype=torch.bool)
    hidden[:, 2] = True
    monkeypatch.setattr(obj, "select_mvm_nodes", lambda nmask, prob=0.15, generator=None: hidden)
    got = []
    monkeypatch.setattr(obj, "mvm_loss", lambda head, feats, masked, targets: got.append(head(feats, masked).detach())
                        or feats.sum() * 0.0)
    for shift in (0.0, 5.0):
        batch.nodes.feats[:, 2] += shift
        torch.manual_seed(7)
        model(batch)
    assert torch.allclose(got[0], got[1], atol=1e-6)


def test_ratio_is_sigmoid_fc_of_each_images_masked_mean_and_learns():
    torch.manual_seed(0)
    enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), dropout=0.0))
    with torch.no_grad():
        enc.ratio.fc.weight.copy_(torch.eye(32) * 0.5)
        enc.ratio.fc.bias.fill_(0.1)
    nodes = _nodes()
    out = enc(nodes)
    expected = torch.sigmoid(0.5 * masked_mean(out.continuous, nodes.node_mask) + 0.1)[:, None, :]
    assert torch.allclose(out.ratio, expected, atol=1e-6)
    assert not torch.allclose(out.ratio[0], out.ratio[1])            # two images, two ratios
    out.tokens.sum().backward()
    assert enc.ratio.fc.weight.grad is not None and enc.ratio.fc.weight.grad.abs().sum() > 0


def test_fixed_ratio_uses_the_configured_value():
    enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), ratio="fixed",
                                     ratio_value=0.3)).eval()
    out = enc(_nodes())
    assert torch.allclose(out.ratio, torch.full_like(out.ratio, 0.3))
    assert torch.allclose(out.tokens, 0.3 * out.discrete + out.continuous)


def test_spiking_branch_is_a_real_share_of_the_tokens_at_init():
    torch.manual_seed(0)
    enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,)))
    share = spiking_share(enc(_nodes())).item()
    assert share >= 0.1, share


def test_eval_tokens_do_not_depend_on_the_other_samples_of_the_batch():
    torch.manual_seed(0)
    enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), batch_as_time=True)).eval()
    a, b = _nodes(1), _nodes(2)
    alone = enc(_nodes(1, b=1)).tokens[0]
    b.feats[0], b.geom[0], b.node_mask[0] = a.feats[0], a.geom[0], a.node_mask[0]
    b.edge_index = a.edge_index                  # the same graph layout (slot counts follow the index)
    in_a, in_b = enc(a).tokens[0], enc(b).tokens[0]
    assert torch.allclose(alone, in_a, atol=1e-5) and torch.allclose(in_a, in_b, atol=1e-5)
    assert enc.train()(a).tokens.shape == (B, K, 32)


def test_itm_overfits_a_small_batch_to_balanced_accuracy():
    """ITM leaves its 1:2 class prior within a few dozen steps on a fixed batch (the head that sat at
    the prior read a from-scratch [CLS]); scored on positives and shifted-caption negatives, balanced."""
    torch.manual_seed(0)
    model = _model(("itc", "itm"))
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(40):
        torch.manual_seed(step)
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        tokens = model.visual(batch.nodes).tokens
        nmask = batch.nodes.node_mask
        shift = torch.roll(torch.arange(B), 1)
        pos = model.itm_logits(batch.text_ids, batch.text_mask, tokens, nmask).argmax(1)
        neg = model.itm_logits(batch.text_ids[shift], batch.text_mask[shift], tokens, nmask).argmax(1)
    balanced = ((pos == 1).float().mean() + (neg == 0).float().mean()) / 2
    assert balanced >= 0.95, balanced
