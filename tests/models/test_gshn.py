"""The hybrid visual encoder and the full pretraining model, across the papers' variants."""
import numpy as np
import pytest
import torch

from models.gshn import GSHN, PretrainBatch, TextSpec
from models.hybrid import VisualConfig, VisualEncoder
from models.nodes import collate_nodes
from models.text import TransformerConfig

B, K, C, L = 4, 6, 16, 7
TEXT = TextSpec(vocab_size=50, mask_id=3, special_ids=(0, 1, 2, 3), max_len=L)


pytestmark = pytest.mark.usefixtures("one_thread")


def _nodes(seed=0, b=B):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(b):
        k = K - (i % 3)  # some padded slots
        edges = np.array([[j, j + 1] for j in range(k - 1)] + [[j + 1, j] for j in range(k - 1)]).T
        samples.append((rng.standard_normal((k, C)).astype(np.float16), rng.random((k, 7)).astype(np.float32),
                        edges.astype(np.int32)))
    return collate_nodes(samples, K)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, TEXT.vocab_size, (B, L), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2
    return PretrainBatch(_nodes(seed), ids, torch.ones(B, L, dtype=torch.long))


def _model(objectives=("itc", "itm", "mlm", "stl"), **visual):
    vcfg = VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), gat_heads=4, dropout=0.0, **visual)
    tcfg = TransformerConfig(d=32, layers=1, heads=4, ffn=64, vocab_size=TEXT.vocab_size, max_text_len=L,
                             max_visual_tokens=K, dropout=0.0)
    return GSHN(vcfg, tcfg, TEXT, objectives)


VARIANTS = {
    "gshn": {},
    "gat_only": {"discrete": "none"},
    "snn_only": {"continuous": "none"},
    "gat_gat": {"discrete": "gat"},
    "snn_snn": {"continuous": "snn"},
    "fixed_r": {"ratio": "fixed", "ratio_value": 1.0},
    "zero_r": {"ratio": "zero"},
    "no_memory": {"memory": False},
    "ash_mlp": {"continuous": "mlp", "snn_input": "parallel"},
    "ash_conv": {"continuous": "conv", "grid": (2, 3)},
}


@pytest.mark.parametrize("name", VARIANTS)
def test_visual_variants_shapes_and_padding(name):
    torch.manual_seed(0)
    enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), **VARIANTS[name])).eval()
    nodes = _nodes()
    out = enc(nodes)
    assert out.tokens.shape == (B, K, 32) and torch.isfinite(out.tokens).all()
    assert (out.tokens[~nodes.node_mask] == 0).all()
    if name in ("gat_only", "gat_gat"):
        assert out.spikes is None and not enc.snn_parameters()
    else:
        assert out.spikes.shape == (3, B, K, 24) and set(out.spikes.unique().tolist()) <= {0.0, 1.0}
    if name == "fixed_r":
        assert torch.allclose(out.tokens, out.discrete + out.continuous)
    if name == "zero_r":
        assert torch.equal(out.tokens, out.continuous)


def test_trainable_ratio_is_per_image_and_channel():
    enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,)))
    out = enc(_nodes())
    assert out.ratio.shape == (B, 1, 32) and ((out.ratio > 0) & (out.ratio < 1)).all()
    assert torch.allclose(out.tokens, out.ratio * out.discrete + out.continuous)


@pytest.mark.parametrize("carry,training", [(True, True), (False, True), (True, False)])
def test_batch_as_time_changes_later_samples(carry, training):
    """In training with batch-as-time, sample 2's spikes depend on sample 1 (state carries); without
    it, and always in eval mode (the evaluation protocol), they do not."""
    if True:
        torch.manual_seed(0)
        enc = VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), batch_as_time=carry,
                                         straight_through=True, dropout=0.0)).train(training)
        for norm in enc.discrete.snn.norms:  # an active untrained SNN: larger normalised currents
            norm.eval()                      # running statistics, so only the membrane can carry
            norm.running_var.fill_(0.01)
        a, b = _nodes(1, b=2), _nodes(2, b=2)
        b.feats[1], b.geom[1], b.node_mask[1] = a.feats[1], a.geom[1], a.node_mask[1]  # same 2nd sample
        b.edge_index = a.edge_index
        spikes = []
        for nodes in (a, b):
            g = torch.Generator().manual_seed(5)
            spikes.append(enc(nodes, g).spikes[:, 1])
        assert spikes[0].sum() > 0
        assert torch.equal(spikes[0], spikes[1]) != (carry and training)


def test_bad_configs():
    with pytest.raises(ValueError, match="at least one"):
        VisualEncoder(VisualConfig(feat_dim=C, continuous="none", discrete="none"))
    with pytest.raises(ValueError, match="need a spiking branch"):
        _model(("itc", "stl"), discrete="none")
    with pytest.raises(ValueError, match="unknown objectives"):
        _model(("itc", "vqa"))


@pytest.mark.parametrize("objectives,visual", [
    (("itc", "itm", "mlm"), {}),                      # GSHN phase 1
    (("itc", "itm", "mlm", "stl"), {}),               # GSHN phase 2
    (("itc", "itm", "mlm", "mvm", "stua"), {"continuous": "mlp", "snn_input": "parallel"}),   # ASH-Nets
])
def test_every_objective_returns_a_loss_and_gradients_flow(objectives, visual):
    torch.manual_seed(0)
    model = _model(objectives, **visual)
    out = model(_batch())
    assert set(objectives) <= set(out) and torch.isfinite(out["loss"])
    out["loss"].backward()
    groups = model.parameter_groups()
    assert groups["snn"], "the spiking branch has SNN parameters"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["snn"])
    assert all(p.grad is not None for p in model.visual.node_input.parameters())


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = _model(("itc", "itm", "mlm", "stl"))
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for step in range(60):
        torch.manual_seed(step)
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else {k: v.item() for k, v in out.items()}
    last = {k: v.item() for k, v in out.items()}
    assert last["loss"] < 0.6 * first["loss"], (first, last)
    assert last["itc"] < first["itc"] and last["mlm"] < first["mlm"]
