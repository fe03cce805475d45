"""Continuous visual encoder (GSHN eq. 3-7): multi-head GAT over each image's node graph, residual."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GATConv(nn.Module):
    """Graph attention (Velickovic et al. 2018; GSHN eq. 3-5), heads concatenated, written on torch alone.

    It computes what torch_geometric's `GATConv(..., concat=True, add_self_loops=True)` computes, with the
    same parameter names, initialisation and random draws, so seeded initial weights and earlier checkpoints
    are unchanged (a whole training run matches only to rounding: README, Stage start-up); importing
    torch_geometric cost ~1.4 s of every model stage's start-up.
    `edge_index` (2, E) holds source -> target pairs; self-loops are replaced by one per node.
    """

    def __init__(self, d_in: int, d_head: int, heads: int, dropout: float = 0.0, negative_slope: float = 0.2):
        super().__init__()
        self.heads, self.d_head, self.dropout, self.negative_slope = heads, d_head, dropout, negative_slope
        self.lin = nn.utils.skip_init(nn.Linear, d_in, heads * d_head, bias=False)   # initialised below
        self.att_src = nn.Parameter(torch.empty(1, heads, d_head))
        self.att_dst = nn.Parameter(torch.empty(1, heads, d_head))
        self.bias = nn.Parameter(torch.zeros(heads * d_head))
        # glorot-uniform; torch_geometric draws the projection twice (its Linear's init, then the layer's reset)
        for p in (self.lin.weight, self.lin.weight, self.att_src, self.att_dst):
            bound = math.sqrt(6.0 / (p.shape[-2] + p.shape[-1]))
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n = x.shape[0]
        h = self.lin(x).view(n, self.heads, self.d_head)
        loops = torch.arange(n, device=x.device).repeat(2, 1)
        src, dst = torch.cat([edge_index[:, edge_index[0] != edge_index[1]], loops], 1)
        logits = (h * self.att_src).sum(-1).index_select(0, src) + (h * self.att_dst).sum(-1).index_select(0, dst)
        alpha = _softmax_by_target(F.leaky_relu(logits, self.negative_slope), dst, n)
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        msg = alpha.unsqueeze(-1) * h.index_select(0, src)
        out = h.new_zeros(n, self.heads, self.d_head).scatter_add_(0, dst.view(-1, 1, 1).expand_as(msg), msg)
        return out.view(n, -1) + self.bias


def _softmax_by_target(logits: Tensor, dst: Tensor, n: int) -> Tensor:
    """Softmax of (E, H) edge logits over the edges sharing a target node (max-shifted for stability)."""
    index = dst.view(-1, 1).expand_as(logits)
    peak = logits.new_zeros(n, logits.shape[1]).scatter_reduce_(0, index, logits.detach(), "amax",
                                                                 include_self=False)
    e = (logits - peak.index_select(0, dst)).exp()
    total = e.new_zeros(n, logits.shape[1]).scatter_add_(0, index, e) + 1e-16
    return e / total.index_select(0, dst)


class GATEncoder(nn.Module):
    """Layers of x <- LN(x + ELU(GATConv(x))); heads concatenated to width d.

    Only real nodes are run: padded slots are dropped before the convolutions (with any edge
    touching them) and come back as zeros, so they can never reach a real node.
    """

    def __init__(self, d: int, heads: int = 4, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"GAT width d={d} must be divisible by heads={heads} (heads are concatenated)")
        self.convs = nn.ModuleList(GATConv(d, d // heads, heads=heads, dropout=dropout) for _ in range(layers))
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
