"""Node input projection and collation: shapes, padding, edge offsets, truncation, bad samples."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from models.nodes import NodeBatch, NodeInput, collate_nodes


def sample(k: int, C: int = 6, edges: Sequence[tuple[int, int]] = (), seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    e = np.array([p for a, b in edges for p in ((a, b), (b, a))], np.int32).reshape(-1, 2).T
    return rng.normal(size=(k, C)).astype(np.float16), rng.random((k, 7)).astype(np.float32), e


def test_collate_pads_and_offsets_edges() -> None:
    batch = collate_nodes([sample(3, edges=[(0, 1), (1, 2)]), sample(2, edges=[(0, 1)], seed=1)], K=4)
    assert batch.feats.shape == (2, 4, 6) and batch.feats.dtype == torch.float32
    assert batch.geom.shape == (2, 4, 7)
    assert batch.node_mask.tolist() == [[True, True, True, False], [True, True, False, False]]
    assert batch.edge_index.dtype == torch.int64
    pairs = set(map(tuple, batch.edge_index.T.tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (4, 5), (5, 4)}      # sample 1 starts at slot 4
    assert batch.feats[0, 3].abs().sum() == 0 and batch.geom[1, 2:].abs().sum() == 0
    n, g, _ = sample(2, seed=1)
    assert torch.equal(batch.feats[1, :2], torch.from_numpy(n).float())
    assert torch.equal(batch.geom[1, :2], torch.from_numpy(g))


def test_collate_accepts_tensors() -> None:
    n, g, e = sample(3, edges=[(0, 2)])
    batch = collate_nodes([(torch.from_numpy(n), torch.from_numpy(g), torch.from_numpy(e))], K=3)
    assert set(map(tuple, batch.edge_index.T.tolist())) == {(0, 2), (2, 0)}


def test_collate_truncates_to_k() -> None:
    batch = collate_nodes([sample(5, edges=[(0, 1), (1, 4), (2, 3)]), sample(3, edges=[(0, 2)])], K=3)
    assert batch.node_mask.all()
    n, _, _ = sample(5)
    assert torch.equal(batch.feats[0], torch.from_numpy(n[:3]).float())
    assert set(map(tuple, batch.edge_index.T.tolist())) == {(0, 1), (1, 0), (3, 5), (5, 3)}


def test_collate_rejects_bad_samples() -> None:
    with pytest.raises(ValueError, match="no nodes"):
        collate_nodes([sample(2), sample(0)], K=4)
    n, g, _ = sample(3)
    with pytest.raises(ValueError, match="outside"):
        collate_nodes([(n, g, np.array([[0], [3]], np.int32))], K=4)
    with pytest.raises(ValueError, match="do not fit"):
        collate_nodes([(n, g[:2], np.zeros((2, 0), np.int32))], K=4)


def test_node_batch_to() -> None:
    batch = collate_nodes([sample(2, edges=[(0, 1)])], K=3).to("cpu")
    assert isinstance(batch, NodeBatch) and batch.edge_index.device.type == "cpu"


def test_node_input_shapes_padding_and_gradients() -> None:
    torch.manual_seed(0)
    batch = collate_nodes([sample(3), sample(1, seed=1)], K=4)
    enc = NodeInput(feat_dim=6, d=16)
    x = enc(batch.feats, batch.geom, batch.node_mask)
    assert x.shape == (2, 4, 16)
    assert x[~batch.node_mask].abs().sum() == 0
    assert torch.allclose(x[batch.node_mask].mean(-1), torch.zeros(4), atol=1e-5)   # LayerNorm
    x.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
