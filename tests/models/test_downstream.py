"""Downstream task models: heads, blind variant, shared visual passes, NLVR2 pairs."""
import pytest
import torch

from models import heads
from models.downstream import TaskBatch, TaskModel
from models.nodes import NodeBatch
from tests.models.test_gshn import TEXT, B, L, _model, _nodes

pytestmark = pytest.mark.usefixtures("one_thread")


def _ids(n=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, TEXT.vocab_size, (n, L), generator=g)
    return ids, torch.ones(n, L, dtype=torch.long)


def _task(task, n_out, blind=False, batch_as_time=False, pool="joint"):
    torch.manual_seed(0)
    return TaskModel.from_pretrained(_model(batch_as_time=batch_as_time), task, n_out, blind, dropout=0.0,
                                     pool=pool).eval()


def test_vqa_loss_and_score_hand_worked():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    scores = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.0, 0.9]])
    assert heads.vqa_score(logits, scores).item() == pytest.approx((1.0 + 0.0) / 2)
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, scores) * 3
    assert heads.vqa_loss(logits, scores).item() == pytest.approx(want.item())


def test_vqa_model_trains_and_reports_accuracy():
    model = _task("vqa", 5).train()
    ids, mask = _ids()
    targets = torch.zeros(B, 5)
    targets[:, 2] = 1.0
    batch = TaskBatch(ids, mask, [_nodes()], [torch.arange(B)], targets)
    out = model(batch)
    assert set(out) >= {"loss", "acc", "firing_rate"} and out["loss"].requires_grad
    out["loss"].backward()
    assert model.head.hidden[0].weight.grad is not None and model.visual.node_input.feat.weight.grad is not None


@pytest.mark.parametrize("pool", ["joint", "product"])
def test_questions_about_one_image_share_its_visual_pass(pool):
    """Image rows indexed per question give the same logits as repeating the image per question."""
    model = _task("ve", 3, pool=pool)
    ids, mask = _ids(4)
    one = _nodes(b=2)
    index = torch.tensor([0, 0, 1, 1])
    shared = model.logits(TaskBatch(ids, mask, [one], [index], torch.zeros(4, dtype=torch.long)))
    K = one.feats.shape[1]
    for q in range(4):   # each question alone with its own image (no batch-mixing: batch_as_time off)
        i = int(index[q])
        single = NodeBatch(one.feats[i: i + 1], one.geom[i: i + 1], one.node_mask[i: i + 1],
                           one.edge_index[:, (one.edge_index // K == i).all(0)] - i * K)
        alone = model.logits(TaskBatch(ids[q: q + 1], mask[q: q + 1], [single], [torch.tensor([0])],
                                       torch.zeros(1, dtype=torch.long)))
        torch.testing.assert_close(alone, shared[q: q + 1], atol=1e-5, rtol=1e-4)


def test_nlvr2_concatenates_two_images_and_blind_ignores_them():
    model = _task("nlvr2", 2)
    assert model.head.hidden[0].in_features == 2 * 32
    ids, mask = _ids()
    batch = TaskBatch(ids, mask, [_nodes(0), _nodes(1)], [torch.arange(B)] * 2, torch.zeros(B, dtype=torch.long))
    assert model.logits(batch).shape == (B, 2)
    blind = _task("nlvr2", 2, blind=True)
    assert blind.visual is None and not blind.parameter_groups()["snn"]
    assert blind.logits(TaskBatch(ids, mask, [], [], batch.targets)).shape == (B, 2)


def test_wrong_image_slots_and_bad_configs_are_clear_errors():
    ids, mask = _ids()
    with pytest.raises(ValueError, match="needs 2 image slots, the batch has 1"):
        _task("nlvr2", 2).logits(TaskBatch(ids, mask, [_nodes()], [torch.arange(B)], torch.zeros(B)))
    with pytest.raises(ValueError, match=r"\(blind\) needs 0 image slots"):
        _task("ve", 3, blind=True).logits(TaskBatch(ids, mask, [_nodes()], [torch.arange(B)], torch.zeros(B)))
    with pytest.raises(ValueError, match="unknown task"):
        _task("gqa", 3)
    with pytest.raises(ValueError, match="at least 2 outputs"):
        _task("vqa", 1)
    with pytest.raises(ValueError, match="unknown pooling"):
        _task("vqa", 3, pool="cls")


def test_text_pooling_reads_the_text_positions_of_the_joint_pass():
    ids, mask = _ids()
    mask[:, -2:] = 0                                   # padded text positions are left out
    batch = TaskBatch(ids, mask, [_nodes()], [torch.arange(B)], torch.zeros(B, dtype=torch.long))
    model = _task("ve", 3, pool="text")
    seq = model.transformer(ids, mask, model.visual(batch.images[0]).tokens, batch.images[0].node_mask)
    want = (seq[:, :L] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(model.pooled(ids, mask, batch.images[0], torch.arange(B)), want)
    joint = _task("ve", 3).pooled(ids, mask, batch.images[0], torch.arange(B))
    assert not torch.allclose(joint, want)


def test_product_pooling_is_joint_mean_and_standardised_unimodal_product():
    ids, mask = _ids()
    nodes, index = _nodes(b=2), torch.tensor([0, 1, 1, 0])[:B]
    model = _task("vqa", 4, pool="product").train()
    model(TaskBatch(ids, mask, [nodes], [index], torch.zeros(len(index), 4)))   # BatchNorm statistics move
    model.eval()
    tokens = model.visual(nodes).tokens
    image = model.transformer.encode_image(tokens, nodes.node_mask)[:, 1:]      # node positions
    img_mask = nodes.node_mask[..., None].float()
    img_mean = (model.transformer.encode_image(tokens, nodes.node_mask)[:, :1].sum(1)
                + (image * img_mask).sum(1)) / (1 + img_mask.sum(1))           # [IMG] + real nodes
    text_mean = model.transformer.encode_text(ids, mask).mean(1)
    bn_t, bn_i = model.norm_text, model.norm_image
    standard = lambda x, bn: (x - bn.running_mean) / (bn.running_var + bn.eps).sqrt() * bn.weight + bn.bias  # noqa: E731
    seq = model.transformer(ids, mask, tokens[index], nodes.node_mask[index])
    joint = (seq * torch.cat([mask, nodes.node_mask[index]], 1)[..., None]).sum(1) \
        / torch.cat([mask, nodes.node_mask[index]], 1).sum(1, keepdim=True)
    want = torch.cat([joint, standard(text_mean, bn_t) * standard(img_mean, bn_i)[index]], 1)
    torch.testing.assert_close(model.pooled(ids, mask, nodes, index), want, atol=1e-5, rtol=1e-4)
    assert model.head.hidden[0].in_features == 2 * 32
    assert bn_t.num_batches_tracked.item() == 1 and not torch.equal(bn_i.running_mean, torch.zeros(32))


def test_product_pooling_blind_has_the_same_head_with_zeros_for_the_product():
    ids, mask = _ids()
    blind = _task("nlvr2", 2, blind=True, pool="product")
    assert blind.head.hidden[0].in_features == 2 * 2 * 32 + 32 and not hasattr(blind, "norm_text")
    pooled = blind.pooled(ids, mask)
    assert pooled.shape == (B, 64) and torch.equal(pooled[:, 32:], torch.zeros(B, 32))
    logits = blind.logits(TaskBatch(ids, mask, [], [], torch.zeros(B, dtype=torch.long)))
    torch.testing.assert_close(logits, blind.head(torch.cat([pooled, pooled, pooled[:, :32]], 1)))


def test_nlvr2_product_head_reads_both_images_and_the_shared_text_once():
    ids, mask = _ids()
    left, right = _nodes(b=2), _nodes(b=3)
    index_l, index_r = torch.tensor([0, 1, 1, 0])[:B], torch.tensor([2, 0, 1, 2])[:B]
    model = _task("nlvr2", 2, pool="product").train()
    model(TaskBatch(ids, mask, [left, right], [index_l, index_r], torch.zeros(B, dtype=torch.long)))
    assert model.norm_text.num_batches_tracked.item() == 1 and model.norm_image.num_batches_tracked.item() == 2
    model.eval()
    text = model.norm_text(model.transformer.encode_text(ids, mask).mean(1))
    want = model.head(torch.cat([model.pooled(ids, mask, left, index_l), model.pooled(ids, mask, right, index_r),
                                 text], 1))
    got = model.logits(TaskBatch(ids, mask, [left, right], [index_l, index_r], torch.zeros(B, dtype=torch.long)))
    torch.testing.assert_close(got, want)
