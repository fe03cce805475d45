"""Continuous visual encoder (GSHN eq. 3-7): multi-head GAT over each image's node graph, residual."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

with warnings.catch_warnings():  # torch_geometric calls the deprecated torch.jit.script at import time
    warnings.simplefilter("ignore", FutureWarning)
    from torch_geometric.nn import GATConv


class GATEncoder(nn.Module):
    """Layers of x <- LN(x + ELU(GATConv(x))); heads concatenated to width d.

    Only real nodes are run: padded slots are dropped before the convolutions (with any edge
    touching them) and come back as zeros, so they can never reach a real node.
    """

    def __init__(self, d: int, heads: int = 4, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"GAT width d={d} must be divisible by heads={heads} (heads are concatenated)")
        self.convs = nn.ModuleList(GATConv(d, d // heads, heads=heads, concat=True, dropout=dropout,
                                           add_self_loops=True) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.act = nn.ELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, node_mask: Tensor, edge_index: Tensor) -> Tensor:
        B, K, d = x.shape
        mask = node_mask.reshape(-1)
        keep = mask[edge_index].all(0)
        remap = torch.cumsum(mask, 0) - 1                  # flat slot -> index among real nodes
        ei = remap[edge_index[:, keep]]
        h = x.reshape(B * K, d)[mask]
        for conv, norm in zip(self.convs, self.norms):
            h = norm(h + self.drop(self.act(conv(h, ei))))
        out = x.new_zeros(B * K, d)
        out[mask] = h.to(out.dtype)           # under CPU autocast, h can be fp32 while out is bf16
        return out.reshape(B, K, d)
