"""MLP and grid-CNN continuous encoders, and the encoder factory."""
from __future__ import annotations

import pytest
import torch

from models.gat import GATEncoder
from models.grid_encoder import ConvGridEncoder, MLPEncoder, build_continuous

EDGES = torch.tensor([[0, 1], [1, 0]])


def inputs(K: int = 6, d: int = 8, real: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mask = torch.zeros(2, K, dtype=torch.bool)
    mask[:, :real] = True
    return torch.randn(2, K, d), mask


def raster(K: int = 6) -> torch.Tensor:
    """Slot i in cell i (a padded slot's cell collides with nothing real)."""
    return torch.arange(K).expand(2, K)


@pytest.mark.parametrize("enc,extra", [(MLPEncoder(8, layers=2), EDGES),
                                       (ConvGridEncoder(8, rows=2, cols=3), raster())], ids=["mlp", "conv"])
def test_shapes_padding_and_gradients(enc: torch.nn.Module, extra: torch.Tensor) -> None:
    x, mask = inputs()
    out = enc(x, mask, extra)
    assert out.shape == (2, 6, 8)
    assert out[~mask].abs().sum() == 0
    x2 = x.clone()
    x2[~mask] = 50.0
    assert torch.allclose(enc(x2, mask, extra), out)       # padded inputs never reach real tokens
    out.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_mlp_is_per_token() -> None:
    x, mask = inputs(real=6)
    enc = MLPEncoder(8, layers=1, hidden=4)
    x2 = x.clone()
    x2[0, 1] += 1.0
    changed = (enc(x2, mask, EDGES) != enc(x, mask, EDGES)).any(-1)
    assert changed.nonzero().tolist() == [[0, 1]]


def test_conv_mixes_within_an_image_only() -> None:
    x, mask = inputs(K=9, real=9)
    enc = ConvGridEncoder(8, rows=3, cols=3, layers=1)
    x2 = x.clone()
    x2[0, 0] += 1.0                                        # cell (0, 0): its 3x3 neighbours are 0, 1, 3, 4
    diff = (enc(x2, mask, raster(9)) - enc(x, mask, raster(9))).abs().amax(-1)
    assert (diff[0, [0, 1, 3, 4]] > 1e-3).all() and (diff[1] == 0).all()


def test_conv_rejects_cells_of_another_shape() -> None:
    x, mask = inputs(K=6)
    with pytest.raises(ValueError, match=r"one cell per slot, shape \(2, 6\); got \(2, 4\)"):
        ConvGridEncoder(8, rows=2, cols=2)(x, mask, raster(4))


def test_factory_builds_each_kind() -> None:
    x, mask = inputs()
    kinds = {"gat": (dict(heads=2, layers=1), EDGES), "mlp": (dict(layers=1), EDGES),
             "conv": (dict(rows=2, cols=3), raster())}
    for kind, (kw, extra) in kinds.items():
        enc = build_continuous(kind, 8, **kw)
        assert enc(x, mask, extra).shape == (2, 6, 8)
    assert isinstance(build_continuous("gat", 8, heads=2), GATEncoder)
    assert build_continuous("none", 8) is None
    with pytest.raises(ValueError, match="must be one of"):
        build_continuous("transformer", 8)
