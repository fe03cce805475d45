"""Semantic memory unit / semantic collector (GSHN eq. 11, ASH-Nets eq. 6)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class SemanticMemory(nn.Module):
    """Learnable M x d memory; a node's selector spikes pick and average memory rows.

    E_syn = (s @ Mem) / max(sum_j s_j, 1/T), s = firing rate of the M selectors (mean over T).
    Any spiking node has sum_j s_j >= 1/T, so this is the papers' normalised sum exactly; the
    floor (one spike in the window) replaces their eps so that a silent node gets zeros with a
    bounded gradient (T * Mem_j rather than Mem_j / eps). Padded slots get zeros.
    """

    def __init__(self, M: int, d: int) -> None:
        super().__init__()
        self.memory = nn.Parameter(torch.randn(M, d) * 0.02)

    def forward(self, spikes: Tensor, node_mask: Tensor) -> Tensor:
        """(T, B, K, M) spikes -> (B, K, d)."""
        s = spikes.mean(0) * node_mask[..., None].to(spikes.dtype)
        return (s @ self.memory) / s.sum(-1, keepdim=True).clamp_min(1.0 / spikes.shape[0])
