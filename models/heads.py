"""Downstream task heads and losses: VQA (soft-score BCE), VE (3-way), NLVR2 (pair of [CLS], 2-way)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLPHead(nn.Module):
    """The UNITER/ALBEF task head: Linear -> GELU -> LayerNorm -> Linear."""

    def __init__(self, d_in: int, n_out: int, hidden: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = hidden or 2 * d_in
        self.hidden = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x))


def vqa_loss(logits: Tensor, scores: Tensor) -> Tensor:
    """BCE on soft VQA scores (B, A), scaled by A as in UNITER/ALBEF so its size does not shrink with A."""
    return F.binary_cross_entropy_with_logits(logits, scores, reduction="mean") * scores.shape[1]


def vqa_score(logits: Tensor, scores: Tensor) -> Tensor:
    """Mean soft score of the arg-max answer (the training-time VQA accuracy over the vocabulary)."""
    return scores.gather(1, logits.argmax(1, keepdim=True)).mean()


def class_loss(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels)


def class_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    return (logits.argmax(1) == labels).float().mean()


def pair_features(left: Tensor, right: Tensor, *shared: Tensor) -> Tensor:
    """NLVR2: the two images' head inputs (B, w) each, then any inputs they share -> (B, 2w + ...)."""
    return torch.cat([left, right, *shared], 1)
