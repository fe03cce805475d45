"""Each knob of the hybrid visual encoder acts: it changes the modules built or the tokens as the papers say."""
import numpy as np
import pytest
import torch

from models import graph
from models import segmenters as seg
from models.gat import GATEncoder
from models.grid_encoder import ConvGridEncoder, MLPEncoder, grid_cells
from models.hybrid import SpikingBranch, VisualConfig, VisualEncoder
from models.memory import SemanticMemory
from tests.models.test_gshn import C, K, _model, _nodes

pytestmark = pytest.mark.usefixtures("one_thread")


def _encoder(**knobs) -> VisualEncoder:
    torch.manual_seed(0)
    return VisualEncoder(VisualConfig(feat_dim=C, d=32, K=K, M=24, T=3, snn_hidden=(32,), dropout=0.0, **knobs))


@pytest.mark.parametrize("continuous,kind", [("gat", GATEncoder), ("mlp", MLPEncoder), ("conv", ConvGridEncoder),
                                             ("snn", SpikingBranch), ("none", type(None))])
def test_continuous_knob_builds_its_encoder(continuous, kind):
    assert type(_encoder(continuous=continuous).continuous) is kind


@pytest.mark.parametrize("discrete,kind", [("snn", SpikingBranch), ("gat", GATEncoder), ("mlp", MLPEncoder),
                                           ("none", type(None))])
def test_discrete_knob_builds_its_encoder(discrete, kind):
    enc = _encoder(discrete=discrete)
    assert type(enc.discrete) is kind and (enc.ratio is None) == (discrete == "none")


def test_memory_off_has_no_memory_parameters():
    on, off = _encoder(memory=True), _encoder(memory=False)
    assert any(isinstance(m, SemanticMemory) for m in on.modules())
    assert not any(isinstance(m, SemanticMemory) for m in off.modules())
    assert not [n for n, _ in off.named_parameters() if "memory" in n]
    assert isinstance(off.discrete.readout, torch.nn.Linear) and off.discrete.readout.in_features == 24


def test_zero_ratio_runs_the_discrete_branch_but_tokens_are_f():
    """GSHN Table V / ASH-Nets Table XI list r = 0 (not "-" as for the SNN-only row): the hybrid with r pinned to
    0. The SNN still spikes, so STL/MVM/STUA keep their targets, and V' = F exactly."""
    enc = _encoder(ratio="zero").train()
    out = enc(_nodes(), torch.Generator().manual_seed(0))
    assert out.spikes is not None and out.spikes.sum() > 0 and enc.snn_parameters()
    assert (out.ratio == 0).all() and torch.equal(out.tokens, out.continuous)
    out.tokens.sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in enc.snn_parameters())
    assert _model(("itc", "stl"), ratio="zero").objectives == ("itc", "stl")


def test_fixed_ratio_value_sets_the_share_of_e():
    enc = _encoder(ratio="fixed", ratio_value=0.3).eval()
    out = enc(_nodes())
    assert torch.allclose(out.tokens, 0.3 * out.discrete + out.continuous)
    assert enc.ratio.fc is None and not [n for n, _ in enc.named_parameters() if n.startswith("ratio")]


def _discrete_input(enc: VisualEncoder) -> dict[str, torch.Tensor]:
    """The node input, the continuous output and what the discrete branch received, for one forward."""
    seen = {}
    enc.node_input.register_forward_hook(lambda m, a, out: seen.__setitem__("node_input", out))
    enc.continuous.register_forward_hook(lambda m, a, out: seen.__setitem__("continuous", out))
    enc.discrete.register_forward_pre_hook(lambda m, a: seen.__setitem__("discrete_in", a[0]))
    enc.eval()(_nodes())
    return seen


def test_parallel_snn_input_reads_the_image_features_serial_reads_f():
    parallel = _discrete_input(_encoder(continuous="mlp", snn_input="parallel"))
    assert torch.equal(parallel["discrete_in"], parallel["node_input"])       # ASH-Nets eq. 5
    assert not torch.allclose(parallel["discrete_in"], parallel["continuous"])
    serial = _discrete_input(_encoder(continuous="mlp", snn_input="serial"))
    assert torch.equal(serial["discrete_in"], serial["continuous"])           # GSHN: spike coding of F_GAT


def test_parallel_input_changes_the_spikes_not_the_parameters():
    serial, parallel = _encoder(snn_input="serial"), _encoder(snn_input="parallel")
    assert [n for n, _ in serial.named_parameters()] == [n for n, _ in parallel.named_parameters()]
    g = torch.Generator().manual_seed(0)
    a = serial.train()(_nodes(), g).spikes
    b = parallel.train()(_nodes(), torch.Generator().manual_seed(0)).spikes
    assert not torch.equal(a, b)


def _grid_tokens(rows: int, cols: int, d: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens of a real rows x cols grid segmentation of a 50 x 61 image, in the features stage's slot order
    (largest first), their geometry, and each slot's raster cell (from a pixel of its segment)."""
    H, W = 50, 61
    s = seg.grid(H, W, rows, cols)
    areas = np.bincount(s.ids.ravel(), minlength=s.n + 1)[1:]
    geom = graph.geometry(np.array(seg.boxes(s)), areas, np.ones(s.n), (H, W))
    first = [np.argwhere(s.ids == i + 1)[0] for i in range(s.n)]
    raster = [y * rows // H * cols + x * cols // W for y, x in first]
    order = sorted(range(s.n), key=lambda i: (-areas[i], i))
    x = torch.randn(1, s.n, d, generator=torch.Generator().manual_seed(0))
    return x, torch.as_tensor(geom[order])[None], torch.tensor([raster[i] for i in order])[None]


@pytest.mark.parametrize("rows,cols", [(4, 5), (6, 6), (3, 8)])
def test_grid_tokens_each_get_their_own_cell_whatever_the_slot_order(rows, cols):
    _, geom, cell = _grid_tokens(rows, cols)
    assert not torch.equal(cell, torch.arange(rows * cols)[None])   # slots are not in raster order
    assert torch.equal(grid_cells(geom, rows, cols), cell)


def test_conv_over_grid_tokens_is_a_conv_over_the_image_grid():
    """The slots' order does not matter: the result is the conv net run on the raster canvas, read per slot."""
    torch.manual_seed(0)
    enc = ConvGridEncoder(8, rows=4, cols=5, layers=2)
    x, geom, cell = _grid_tokens(4, 5)
    got = enc(x, torch.ones(1, 20, dtype=torch.bool), grid_cells(geom, 4, 5))
    canvas = torch.empty_like(x)
    canvas[0, cell[0]] = x[0]
    g = canvas.transpose(1, 2).reshape(1, 8, 4, 5)
    for block in enc.blocks:
        g = g + block(g)
    want = enc.norm(g.flatten(2).transpose(1, 2))[0, cell[0]]
    assert torch.allclose(got[0], want, atol=1e-5)


def test_conv_is_reachable_with_the_default_square_canvas():
    enc = _encoder(continuous="conv")
    assert (enc.continuous.rows, enc.continuous.cols) == (3, 3)          # ceil(sqrt(K = 6))
    nodes = _nodes()
    out = enc.eval()(nodes)
    assert out.tokens.shape == (4, K, 32) and (out.tokens[~nodes.node_mask] == 0).all()


def test_conv_tokens_sharing_a_cell_enter_as_their_mean_and_keep_their_own_residual():
    torch.manual_seed(0)
    enc = ConvGridEncoder(8, rows=2, cols=2, layers=1)
    x, mask = torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    shared = enc(x, mask, torch.tensor([[0, 0, 3]]))
    assert not torch.allclose(shared[0, 0], shared[0, 1])
    mean = torch.stack([x[0, :2].mean(0), x[0, 2]])[None]          # the two in cell 0 as one token
    alone = enc(mean, mask[:, :2], torch.tensor([[0, 3]]))
    assert torch.allclose(shared[0, 2], alone[0, 1], atol=1e-5)    # cell 3 sees the same canvas

