"""Evaluation metrics as pure functions (tested by hand-worked cases)."""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def recall_at_k(sim: np.ndarray, gt: list[set[int]], ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Recall@K of a query x candidate similarity matrix: share of queries whose top K holds a true match."""
    if sim.shape[0] != len(gt):
        raise ValueError(f"{sim.shape[0]} queries but {len(gt)} ground-truth sets")
    order = np.argsort(-sim, axis=1, kind="stable")[:, :max(ks)]
    return recall_of_rankings(order.tolist(), gt, ks)


def recall_of_rankings(rankings: Sequence[Sequence[Hashable]], gt: Sequence[set], ks: tuple[int, ...] = (1, 5, 10),
                       ) -> dict[int, float]:
    """Recall@K of ranked candidate lists (best first): share of queries whose first K hold a true match."""
    if len(rankings) != len(gt):
        raise ValueError(f"{len(rankings)} rankings but {len(gt)} ground-truth sets")
    if not gt:
        raise ValueError("recall of no queries")
    return {k: sum(bool(gt[q].intersection(rankings[q][:k])) for q in range(len(gt))) / len(gt) for k in ks}


def top1_accuracy(predicted: list, truth: list) -> float:
    """Share of predictions equal to the truth (VE, NLVR2)."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} labels")
    if not truth:
        raise ValueError("accuracy of an empty set")
    return sum(p == t for p, t in zip(predicted, truth)) / len(truth)


def chance_recall(k: int, candidates: int, matches: int = 1) -> float:
    """Recall@K of a random ranking: P(at least one of `matches` true items in the top K of `candidates`)."""
    if not 0 < matches <= candidates:
        raise ValueError(f"need 0 < matches <= candidates, got {matches} of {candidates}")
    k = min(k, candidates)
    miss = 1.0
    for i in range(k):  # all K picks miss the true items
        miss *= (candidates - matches - i) / (candidates - i)
    return 1.0 - max(miss, 0.0)
