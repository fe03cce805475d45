"""Node geometry and graph edges for an image's segments, in plain numpy (no pyg-lib needed)."""
from __future__ import annotations

import numpy as np

GEOM_FIELDS = ("x1", "y1", "x2", "y2", "area", "fill", "score")
EDGE_MODES = ("adjacency", "knn", "adjacency_knn", "full")


def geometry(bboxes: np.ndarray, areas: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """k x 7: box corners normalised to [0,1], area fraction, fill ratio (area / box area), score."""
    H, W = image_hw
    b = bboxes.astype(np.float32)
    box_area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1.0)
    return np.stack([b[:, 0] / W, b[:, 1] / H, b[:, 2] / W, b[:, 3] / H,
                     areas / float(H * W), areas / box_area, scores], axis=1).astype(np.float32)


def adjacency(slots: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of slots (0-based) that share a horizontal or vertical pixel border."""
    k1 = int(slots.max()) + 1
    codes = []
    for a, b in ((slots[:, :-1], slots[:, 1:]), (slots[:-1, :], slots[1:, :])):
        m = (a != b) & (a > 0) & (b > 0)
        codes.append(a[m].astype(np.int64) * k1 + b[m])
    present = np.flatnonzero(np.bincount(np.concatenate(codes), minlength=k1 * k1))
    return {(int(c // k1) - 1, int(c % k1) - 1) for c in present}


def centroids(slots: np.ndarray, k: int) -> np.ndarray:
    """k x 2 (x, y) mean pixel position of each slot (normalised to [0,1])."""
    H, W = slots.shape
    lab = slots.ravel()
    ys, xs = np.divmod(np.arange(lab.size), W)
    n = np.maximum(np.bincount(lab, minlength=k + 1)[1:], 1)
    cx = np.bincount(lab, weights=xs, minlength=k + 1)[1:] / n / W
    cy = np.bincount(lab, weights=ys, minlength=k + 1)[1:] / n / H
    return np.stack([cx, cy], 1)


def knn(points: np.ndarray, k_neighbours: int) -> set[tuple[int, int]]:
    n = len(points)
    if n < 2:
        return set()
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, axis=1, kind="stable")[:, : min(k_neighbours, n - 1)]
    return {(i, int(j)) for i in range(n) for j in nb[i]}


def edges(slots: np.ndarray, k: int, mode: str, k_neighbours: int) -> np.ndarray:
    """2 x E int32 directed edges (both directions, no self loops), sorted; over slots 0..k-1."""
    if mode not in EDGE_MODES:
        raise ValueError(f"edge mode must be one of {EDGE_MODES}, got {mode!r}")
    if mode == "full":
        pairs = {(i, j) for i in range(k) for j in range(k) if i != j}
    else:
        pairs = set()
        if mode in ("adjacency", "adjacency_knn"):
            pairs |= adjacency(slots)
        if mode in ("knn", "adjacency_knn"):
            pairs |= knn(centroids(slots, k), k_neighbours)
    pairs |= {(j, i) for i, j in pairs}
    if not pairs:
        return np.zeros((2, 0), np.int32)
    return np.array(sorted(pairs), np.int32).T
