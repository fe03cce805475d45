"""Evaluation metrics as pure functions (tested by hand-worked cases)."""
from __future__ import annotations

import numpy as np


def recall_at_k(sim: np.ndarray, gt: list[set[int]], ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Recall@K of a query x candidate similarity matrix: share of queries whose top K holds a true match."""
    if sim.shape[0] != len(gt):
        raise ValueError(f"{sim.shape[0]} queries but {len(gt)} ground-truth sets")
    order = np.argsort(-sim, axis=1, kind="stable")
    out = {}
    for k in ks:
        top = order[:, :k]
        out[k] = float(np.mean([bool(gt[q] & set(top[q].tolist())) for q in range(len(gt))]))
    return out


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
