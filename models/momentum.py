"""Momentum encoders (MoCo, ALBEF): slowly moving copies of the encoders that fill the ITC queue.

ASH-Nets (III.C.1) adds "image and text queues ... inspired by MoCo" to ITC, after ALBEF; in both, the
queued embeddings come from a momentum encoder, an exponential moving average of the trained one, so that
embeddings queued many steps apart stay comparable. Neither paper gives the coefficient: 0.995 is ALBEF's.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

MOMENTUM = 0.995


class MomentumEncoders(nn.Module):
    """Moving averages of named modules, p_m <- m p_m + (1 - m) p, as parameters that take no gradient: the state
    dict (checkpoints, resume) carries them, and no optimiser group may hold them. Buffers (batch-norm
    statistics) are their own, updated by their own forward passes, as in ALBEF."""

    def __init__(self, online: dict[str, nn.Module], m: float = MOMENTUM) -> None:
        super().__init__()
        self.m = m
        self.copies = nn.ModuleDict({name: copy.deepcopy(module) for name, module in online.items()})
        self.copies.requires_grad_(False)

    def __getitem__(self, name: str) -> nn.Module:
        return self.copies[name]

    @torch.no_grad()
    def update(self, online: dict[str, nn.Module]) -> None:
        for name, module in online.items():
            for p_m, p in zip(self.copies[name].parameters(), module.parameters(), strict=True):
                p_m.mul_(self.m).add_(p.detach(), alpha=1 - self.m)

    @torch.no_grad()
    def sync(self, online: dict[str, nn.Module]) -> None:
        """Copy the online parameters (after weights were loaded into the online modules only)."""
        for name, module in online.items():
            for p_m, p in zip(self.copies[name].parameters(), module.parameters(), strict=True):
                p_m.copy_(p)
