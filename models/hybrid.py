"""The hybrid visual encoder: continuous branch + discrete (spiking) branch fused by a ratio r.

GSHN eq. 12-13 / ASH-Nets eq. 7-8:  r = sigmoid(FC(mean over nodes of F)),  V' = r * E + F,
with F the continuous branch (GAT over the node graph; MLP/conv for ASH-Nets' grid tokens) and
E the discrete branch (Bernoulli spike coding of F -> SNN selector spikes -> semantic memory).
The papers' ablations are settings of the same modules, never copies:
  continuous: gat | mlp | conv | snn | none      discrete: snn | gat | mlp | none
  ratio: trainable | fixed (r = value) | zero (r = 0: the discrete branch runs, its spikes still give
         STL/MVM/STUA their targets, but V' = F; GSHN Table V and ASH-Nets Table XI list this row with
         "r = 0" beside the SNN-only row's "-", so the hybrid is built and only its ratio is pinned)
  memory: on (spikes select memory rows) | off (a linear read-out of the firing rates)
  snn_input: serial (the discrete branch encodes F: GSHN, spike coding of F_GAT) | parallel (it encodes
             the node input, beside the continuous branch: ASH-Nets eq. 5, spikes of the image itself)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from models.grid_encoder import ConvGridEncoder, build_continuous, grid_cells
from models.memory import SemanticMemory
from models.nodes import NodeBatch, NodeInput
from models.pooling import masked_mean
from models.snn import SNNEncoder, encode_spikes

Branch = Literal["gat", "mlp", "conv", "snn", "none"]
RatioMode = Literal["trainable", "fixed", "zero"]
SnnInput = Literal["serial", "parallel"]


@dataclass(frozen=True)
class VisualConfig:
    feat_dim: int                      # C of the node shards
    d: int = 128                       # model width
    K: int = 36                        # node slots
    continuous: Branch = "gat"
    discrete: Branch = "snn"
    ratio: RatioMode = "trainable"
    ratio_value: float = 1.0           # r when ratio == "fixed"
    memory: bool = True
    snn_input: SnnInput = "serial"     # what the discrete branch encodes: F (serial) or the node input (parallel)
    M: int = 256                       # selector neurons = memory rows
    T: int = 4                         # SNN time window
    snn_hidden: tuple[int, ...] = (256,)
    straight_through: bool = True
    batch_as_time: bool = True
    gat_heads: int = 4
    gat_layers: int = 2
    grid: tuple[int, int] | None = None    # (rows, cols) of the conv branch's canvas; None = a ceil(sqrt K) square
    dropout: float = 0.1


@dataclass
class VisualOutput:
    tokens: Tensor                     # V' (B, K, d): the visual tokens for the transformer
    continuous: Tensor | None          # F (B, K, d)
    discrete: Tensor | None            # E (B, K, d)
    spikes: Tensor | None              # selector spikes (T, B, K, M) of the spiking branch
    ratio: Tensor | None               # r (B, 1, d)


class SpikingBranch(nn.Module):
    """Spike coding -> SNN -> semantic memory (or a linear read-out of firing rates) -> LayerNorm.

    The LayerNorm puts E on the scale of the LayerNorm-scaled continuous features F, so that
    r * E is a real share of V' from the first step; the memory's own scale then only sets
    how far apart its rows start. In eval mode the spike coding draws from one fixed noise
    pattern shared by every sample, so a sample's spikes never depend on its batch."""

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__()
        self.T, self.straight_through = cfg.T, cfg.straight_through
        self.snn = SNNEncoder(cfg.d, cfg.snn_hidden, cfg.M, batch_as_time=cfg.batch_as_time)
        self.readout = SemanticMemory(cfg.M, cfg.d) if cfg.memory else nn.Linear(cfg.M, cfg.d)
        self.norm = nn.LayerNorm(cfg.d)
        self.memory = cfg.memory

    def forward(self, x: Tensor, node_mask: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        shared = not self.training      # one noise pattern for every sample at test time
        spikes = self.snn(encode_spikes(x, self.T, self.straight_through, generator, shared), node_mask)
        keep = node_mask[..., None].to(x.dtype)
        readout = self.readout(spikes, node_mask) if self.memory else self.readout(spikes.mean(0))
        return self.norm(readout) * keep, spikes


class HybridRatio(nn.Module):
    """r per image and channel: trainable sigmoid(FC(masked mean of F)), a fixed value, or 0."""

    def __init__(self, d: int, mode: RatioMode, value: float) -> None:
        super().__init__()
        self.mode, self.value = mode, value
        self.fc = nn.Linear(d, d) if mode == "trainable" else None

    def forward(self, F: Tensor, node_mask: Tensor) -> Tensor:
        if self.fc is None:
            return F.new_full((F.shape[0], 1, F.shape[2]), self.value if self.mode == "fixed" else 0.0)
        return torch.sigmoid(self.fc(masked_mean(F, node_mask)))[:, None, :]


def conv_grid(cfg: VisualConfig) -> tuple[int, int]:
    """The conv canvas: cfg.grid, else the smallest square with a cell per slot (6 x 6 for K = 36, the
    default `segment.grid`), so grid tokens each get their own cell."""
    side = math.ceil(math.sqrt(cfg.K))
    return cfg.grid or (side, side)


def _branch(kind: Branch, cfg: VisualConfig) -> nn.Module | None:
    if kind == "snn":
        return SpikingBranch(cfg)
    rows, cols = conv_grid(cfg)
    kw = {"gat": dict(heads=cfg.gat_heads, layers=cfg.gat_layers, dropout=cfg.dropout),
          "conv": dict(rows=rows, cols=cols)}.get(kind, {})
    return build_continuous(kind, cfg.d, **kw)


class VisualEncoder(nn.Module):
    """Node shards (NodeBatch) -> visual tokens V' (GSHN Fig. 2 / ASH-Nets Fig. 1)."""

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__()
        if cfg.continuous == "none" and cfg.discrete == "none":
            raise ValueError("at least one of the continuous and discrete branches must be on")
        self.cfg = cfg
        self.node_input = NodeInput(cfg.feat_dim, cfg.d, dropout=cfg.dropout)
        self.continuous = _branch(cfg.continuous, cfg)
        self.discrete = _branch(cfg.discrete, cfg)
        both = self.continuous is not None and self.discrete is not None
        self.ratio = HybridRatio(cfg.d, cfg.ratio, cfg.ratio_value) if both else None

    def spiking_branches(self) -> list[SpikingBranch]:
        return [b for b in (self.continuous, self.discrete) if isinstance(b, SpikingBranch)]

    def snn_parameters(self) -> list[nn.Parameter]:
        """Parameters of the SNN encoders (frozen in phase 1, SGD in phase 2); memory excluded."""
        return [p for b in self.spiking_branches() for p in b.snn.parameters()]

    def _run(self, branch: nn.Module, x: Tensor, nodes: NodeBatch,
             generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        if isinstance(branch, SpikingBranch):
            return branch(x, nodes.node_mask, generator)
        if isinstance(branch, ConvGridEncoder):
            return branch(x, nodes.node_mask, grid_cells(nodes.geom, branch.rows, branch.cols)), None
        return branch(x, nodes.node_mask, nodes.edge_index), None

    def forward(self, nodes: NodeBatch, generator: torch.Generator | None = None,
                hidden: Tensor | None = None) -> VisualOutput:
        """`hidden` (B, K) bool: nodes whose features are zeroed BEFORE the encoders (UNITER's masked
        regions; their geometry stays), so no branch and no r sees what a masked-node target is made of."""
        feats = nodes.feats if hidden is None else nodes.feats.masked_fill(hidden[..., None], 0.0)
        x = self.node_input(feats, nodes.geom, nodes.node_mask)
        F = E = spikes = r = None
        if self.continuous is not None:
            F, spikes = self._run(self.continuous, x, nodes, generator)
        if self.discrete is not None:
            serial = F is not None and self.cfg.snn_input == "serial"
            E, discrete_spikes = self._run(self.discrete, F if serial else x, nodes, generator)
            spikes = discrete_spikes if discrete_spikes is not None else spikes
        if F is not None and E is not None:
            r = self.ratio(F, nodes.node_mask)
            tokens = r * E + F
        else:
            tokens = F if F is not None else E
        return VisualOutput(tokens, F, E, spikes, r)
