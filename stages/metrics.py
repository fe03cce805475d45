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
