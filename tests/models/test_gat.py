"""GAT layer against the paper's equations; encoder: shapes, padding isolation, graph locality, gradients, overfit."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.gat import GATConv, GATEncoder


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


def reference_gat(conv: GATConv, x: torch.Tensor, edges: set[tuple[int, int]]) -> torch.Tensor:
    """GSHN eq. 3-5 node by node: e_ij = LeakyReLU(a_src . W x_j + a_dst . W x_i) over j in N(i) and i itself,
    softmax over j, sum of alpha_ij W x_j per head, heads concatenated, plus the bias."""
    H, C = conv.heads, conv.d_head
    h = (x @ conv.lin.weight.T).view(len(x), H, C)
    rows = []
    for i in range(len(x)):
        js = sorted({j for j, t in edges if t == i and j != i} | {i})
        e = F.leaky_relu(torch.stack([(h[j] * conv.att_src[0]).sum(-1) + (h[i] * conv.att_dst[0]).sum(-1)
                                      for j in js]), 0.2)                       # (|js|, H)
        alpha = e.softmax(0)
        rows.append((alpha.unsqueeze(-1) * h[js]).sum(0).reshape(-1))
    return torch.stack(rows) + conv.bias


def test_layer_computes_the_papers_attention() -> None:
    torch.manual_seed(0)
    conv = GATConv(6, 3, heads=2).eval()
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(5, 6)
    edges = {(0, 1), (1, 0), (1, 2), (3, 1), (2, 2), (4, 4)}      # directed; 2 and 4 carry a self-loop already
    ei = torch.tensor(sorted(edges)).T
    assert torch.allclose(conv(x, ei), reference_gat(conv, x, edges), atol=1e-6)


def test_attention_weights_follow_the_features_and_the_edges() -> None:
    torch.manual_seed(0)
    conv = GATConv(4, 4, heads=1).eval()
    x = torch.randn(3, 4)
    one = torch.tensor([[1], [0]])                     # 1 -> 0 only
    out = conv(x, one)
    x2 = x.clone()
    x2[2] += 3.0                                       # node 2 has no edge to node 0
    assert torch.allclose(conv(x2, one)[0], out[0])
    x2[1] += 3.0                                       # node 1 sends to node 0: its weight and message change
    assert not torch.allclose(conv(x2, one)[0], out[0])
    with torch.no_grad():
        conv.att_src.zero_()
        conv.att_dst.zero_()                           # no attention: node 0 averages itself and node 1
    h = x @ conv.lin.weight.T
    assert torch.allclose(conv(x, one)[0], (h[0] + h[1]) / 2 + conv.bias, atol=1e-6)


def test_a_repeated_edge_counts_twice_and_a_given_self_loop_once() -> None:
    torch.manual_seed(0)
    conv = GATConv(4, 4, heads=1).eval()
    with torch.no_grad():
        conv.att_src.zero_()
        conv.att_dst.zero_()
    x = torch.randn(2, 4)
    h = x @ conv.lin.weight.T
    twice = torch.tensor([[1, 1, 0], [0, 0, 0]])       # 1 -> 0 twice, and 0's own self-loop
    assert torch.allclose(conv(x, twice)[0], (h[0] + 2 * h[1]) / 3 + conv.bias, atol=1e-6)


def test_attention_dropout_acts_in_training_only() -> None:
    torch.manual_seed(0)
    conv = GATConv(4, 2, heads=2, dropout=0.5)
    x, ei = torch.randn(6, 4), undirected([(i, i + 1) for i in range(5)])
    torch.manual_seed(1)
    train = conv(x, ei)
    conv.eval()
    assert not torch.allclose(train, conv(x, ei)) and torch.equal(conv(x, ei), conv(x, ei))
