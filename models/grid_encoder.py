"""Other continuous encoders (ASH-Nets eq. 4, the CNN "visual concrete encoder") and the encoder factory.

Every encoder is called as enc(x B x K x d, node_mask B x K, edge_index 2 x E) -> B x K x d with
padded slots zero; the MLP and the grid CNN ignore edge_index.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from torch import Tensor, nn

from models.gat import GATEncoder


def _masked(x: Tensor, node_mask: Tensor) -> Tensor:
    return x * node_mask.unsqueeze(-1).to(x.dtype)


class MLPEncoder(nn.Module):
    """Per-token residual MLP blocks: x <- LN(x + W2 GELU(W1 x)); no mixing between tokens."""

    def __init__(self, d: int, layers: int = 2, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = hidden or 4 * d
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d), nn.Dropout(dropout))
            for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))

    def forward(self, x: Tensor, node_mask: Tensor, edge_index: Tensor | None = None) -> Tensor:
        for block, norm in zip(self.blocks, self.norms):
            x = norm(x + block(x))
        return _masked(x, node_mask)


class ConvGridEncoder(nn.Module):
    """Residual 3x3 conv blocks over grid tokens (rows x cols cells in raster order, K = rows*cols).

    Padded cells enter as zeros (like the conv's own zero padding), so their inputs never matter.
    """

    def __init__(self, d: int, rows: int, cols: int, layers: int = 2) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, d, 3, padding=1), nn.GroupNorm(math.gcd(8, d), d), nn.GELU())
            for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, node_mask: Tensor, edge_index: Tensor | None = None) -> Tensor:
        B, K, d = x.shape
        if K != self.rows * self.cols:
            raise ValueError(f"ConvGridEncoder needs K = rows*cols = {self.rows}*{self.cols} = "
                             f"{self.rows * self.cols} grid tokens, got K={K}")
        g = _masked(x, node_mask).transpose(1, 2).reshape(B, d, self.rows, self.cols)
        for block in self.blocks:
            g = g + block(g)
        return _masked(self.norm(g.flatten(2).transpose(1, 2)), node_mask)


ContinuousKind = Literal["gat", "mlp", "conv", "none"]


def build_continuous(kind: ContinuousKind, d: int, **kw: Any) -> nn.Module | None:
    """The continuous encoder of a preset; `kw` go to its constructor; "none" -> None (no continuous stream)."""
    builders = {"gat": GATEncoder, "mlp": MLPEncoder, "conv": ConvGridEncoder}
    if kind == "none":
        return None
    if kind not in builders:
        raise ValueError(f"continuous encoder must be one of {[*builders, 'none']}, got {kind!r}")
    return builders[kind](d, **kw)
