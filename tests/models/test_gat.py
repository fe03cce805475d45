"""GAT encoder: shapes, padding isolation, graph locality, gradients, a small overfit."""
from __future__ import annotations

import pytest
import torch

from models.gat import GATEncoder


def undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    return torch.tensor([p for a, b in pairs for p in ((a, b), (b, a))], dtype=torch.long).T


def setup(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2 images, K=4: image 0 has nodes 0-1-2 in a chain, image 1 has nodes 0-1 (flat 4, 5)."""
    torch.manual_seed(seed)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    x = torch.randn(2, 4, 8) * mask.unsqueeze(-1)
    return x, mask, undirected([(0, 1), (1, 2), (4, 5)])


def test_shapes_and_padded_slots_zero() -> None:
    x, mask, ei = setup()
    out = GATEncoder(8, heads=2, layers=2).eval()(x, mask, ei)
    assert out.shape == (2, 4, 8)
    assert out[~mask].abs().sum() == 0 and out[mask].abs().sum() > 0


def test_padded_slots_do_not_influence_real_nodes() -> None:
    x, mask, ei = setup()
    enc = GATEncoder(8, heads=2, layers=2).eval()
    ref = enc(x, mask, ei)
    x2 = x.clone()
    x2[0, 3] = 100.0
    x2[1, 2:] = -7.0
    ei2 = torch.cat([ei, undirected([(2, 3), (5, 6)])], 1)   # even edges to padded slots are ignored
    assert torch.allclose(enc(x2, mask, ei2), ref)


def test_respects_graph() -> None:
    x, mask, ei = setup()
    enc = GATEncoder(8, heads=2, layers=1).eval()
    ref = enc(x, mask, ei)
    x2 = x.clone()
    x2[0, 2] += 1.0                                         # node 2 touches node 1 only
    out = enc(x2, mask, ei)
    assert torch.allclose(out[0, 0], ref[0, 0])             # no edge 0-2: unchanged after 1 layer
    assert not torch.allclose(out[0, 1], ref[0, 1])         # edge 1-2: changed
    assert torch.allclose(out[1], ref[1])                   # other image untouched


def test_gradients_reach_all_parameters() -> None:
    x, mask, ei = setup()
    enc = GATEncoder(8, heads=2, layers=2, dropout=0.1)
    x.requires_grad_(True)
    enc(x, mask, ei).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    assert x.grad[mask].abs().sum() > 0


def test_bad_heads() -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        GATEncoder(10, heads=4)


def test_overfits_node_target(one_thread: None) -> None:
    torch.manual_seed(0)
    mask = torch.ones(1, 8, dtype=torch.bool)
    x = torch.randn(1, 8, 16)
    ei = undirected([(i, i + 1) for i in range(7)] + [(0, 4)])
    y = torch.randn(8)
    enc, head = GATEncoder(16, heads=4, layers=2, dropout=0.0), torch.nn.Linear(16, 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(100):
        loss = (head(enc(x, mask, ei))[0, :, 0] - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
