"""Node input (GSHN eq. 1-2: x = LN(W_f feat + W_g geom)) and batching of per-image node data."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

ArrayLike = np.ndarray | Tensor


class NodeInput(nn.Module):
    """Mask-pooled features and geometry -> d-wide node tokens; padded slots are zero."""

    def __init__(self, feat_dim: int, d: int, geom_dim: int = 7, dropout: float = 0.0) -> None:
        super().__init__()
        self.feat = nn.Linear(feat_dim, d)
        self.geom = nn.Linear(geom_dim, d, bias=False)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, feats: Tensor, geom: Tensor, node_mask: Tensor) -> Tensor:
        x = self.drop(self.norm(self.feat(feats) + self.geom(geom)))
        return x * node_mask.unsqueeze(-1).to(x.dtype)


@dataclass
class NodeBatch:
    """B images padded to K slots; edge_index is over the flattened B*K slots (image b, slot i -> b*K + i)."""

    feats: Tensor        # B x K x C float32
    geom: Tensor         # B x K x G float32
    node_mask: Tensor    # B x K bool, True = real node
    edge_index: Tensor   # 2 x E int64

    def to(self, device: torch.device | str) -> NodeBatch:
        return NodeBatch(*(t.to(device) for t in (self.feats, self.geom, self.node_mask, self.edge_index)))


def collate_nodes(samples: Sequence[tuple[ArrayLike, ArrayLike, ArrayLike]], K: int) -> NodeBatch:
    """(nodes k x C, geom k x G, edges 2 x E) per image -> NodeBatch; k > K is truncated to the K largest."""
    if not samples:
        raise ValueError("collate_nodes needs at least one sample")
    nodes0, geom0, _ = samples[0]
    B, C, G = len(samples), nodes0.shape[1], geom0.shape[1]
    feats, geom = torch.zeros(B, K, C), torch.zeros(B, K, G)
    node_mask = torch.zeros(B, K, dtype=torch.bool)
    edge_parts = []
    for b, (n, g, e) in enumerate(samples):
        n, g, e = torch.as_tensor(n), torch.as_tensor(g), torch.as_tensor(e).long()
        k = n.shape[0]
        if k == 0:
            raise ValueError(f"sample {b} has no nodes")
        if n.shape[1] != C or g.shape != (k, G) or e.ndim != 2 or e.shape[0] != 2:
            raise ValueError(f"sample {b}: nodes {tuple(n.shape)}, geom {tuple(g.shape)}, edges {tuple(e.shape)} "
                             f"do not fit (k x {C}, k x {G}, 2 x E)")
        if e.numel() and (e.min() < 0 or e.max() >= k):
            raise ValueError(f"sample {b}: edges reference slots outside 0..{k - 1}")
        k = min(k, K)
        feats[b, :k], geom[b, :k], node_mask[b, :k] = n[:k].float(), g[:k].float(), True
        edge_parts.append(e[:, (e < k).all(0)] + b * K)     # drop edges touching truncated nodes
    return NodeBatch(feats, geom, node_mask, torch.cat(edge_parts, 1))
