"""Other continuous encoders (ASH-Nets eq. 4, the CNN "visual concrete encoder") and the encoder factory.

Every encoder maps x B x K x d and node_mask B x K to B x K x d with padded slots zero; the GAT also
reads edge_index (2 x E), the MLP ignores it, and the grid CNN reads each slot's canvas cell instead.
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
    """Residual 3x3 conv blocks over a rows x cols canvas: each token sits in a cell (`cells`, from its box
    centre: `grid_cells`), the conv runs over the canvas and each token adds its cell's update to itself.

    With grid tokens (`segment.backend: grid` at the canvas's rows x cols) every token has its own cell,
    in whatever order the slots hold them (largest first), and this is a plain conv net over the image's
    grid (ASH-Nets eq. 4). Tokens that share a cell enter as their mean and keep their own residual;
    empty cells and padded slots enter as zeros (like the conv's own zero padding).
    """

    def __init__(self, d: int, rows: int, cols: int, layers: int = 2) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, d, 3, padding=1), nn.GroupNorm(math.gcd(8, d), d), nn.GELU())
            for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, node_mask: Tensor, cells: Tensor) -> Tensor:
        """x (B, K, d), node_mask (B, K), cells (B, K) long in [0, rows*cols) -> (B, K, d)."""
        B, K, d = x.shape
        n = self.rows * self.cols
        if cells.shape != (B, K):     # values: grid_cells keeps them in 0..n-1
            raise ValueError(f"ConvGridEncoder needs one cell per slot, shape {(B, K)}; got {tuple(cells.shape)}")
        real = node_mask.unsqueeze(-1).to(x.dtype)
        at = cells.unsqueeze(-1)
        count = x.new_zeros(B, n, 1).scatter_add_(1, at, real)
        canvas = x.new_zeros(B, n, d).scatter_add_(1, at.expand(B, K, d), x * real) / count.clamp_min(1.0)
        g = canvas.transpose(1, 2).reshape(B, d, self.rows, self.cols)
        for block in self.blocks:
            g = g + block(g)
        update = g.flatten(2).transpose(1, 2) - canvas
        return _masked(self.norm(x + update.gather(1, at.expand(B, K, d))), node_mask)


def grid_cells(geom: Tensor, rows: int, cols: int) -> Tensor:
    """(B, K, 7) node geometry (x1, y1, x2, y2 normalised, ...) -> (B, K) long: the raster index of the
    rows x cols cell holding each box's centre."""
    cx, cy = (geom[..., 0] + geom[..., 2]) / 2, (geom[..., 1] + geom[..., 3]) / 2
    row = (cy * rows).floor().clamp(0, rows - 1).long()
    col = (cx * cols).floor().clamp(0, cols - 1).long()
    return row * cols + col


ContinuousKind = Literal["gat", "mlp", "conv", "none"]


def build_continuous(kind: ContinuousKind, d: int, **kw: Any) -> nn.Module | None:
    """The continuous encoder of a preset; `kw` go to its constructor; "none" -> None (no continuous stream)."""
    builders = {"gat": GATEncoder, "mlp": MLPEncoder, "conv": ConvGridEncoder}
    if kind == "none":
        return None
    if kind not in builders:
        raise ValueError(f"continuous encoder must be one of {[*builders, 'none']}, got {kind!r}")
    return builders[kind](d, **kw)
