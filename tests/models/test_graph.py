"""Node geometry, slot adjacency, centroid kNN and edge lists in every mode."""
from __future__ import annotations

import numpy as np
import pytest

from models.graph import EDGE_MODES, GEOM_FIELDS, adjacency, centroids, edges, geometry, knn

# 5x5 slot map (0 = void). Contacts:
#   1-2 horizontal at (0,2)-(0,3); 2-5 vertical at (1,4)-(2,4); 3-4 horizontal at (3,1)-(3,2).
# Not adjacent: 1-3 and 2-3 touch only diagonally ((1,1)/(2,2) and (1,3)/(2,2));
#   1-4 and 3-5 and 2-3 are separated by void pixels.
SLOTS = np.array([[1, 1, 1, 2, 2],
                  [1, 1, 0, 2, 2],
                  [0, 0, 3, 0, 5],
                  [4, 4, 3, 0, 5],
                  [4, 4, 0, 0, 5]], np.int32)
SLOTS_ADJ = {frozenset(p) for p in [(0, 1), (1, 4), (2, 3)]}       # 0-based


def undirected(pairs: set[tuple[int, int]]) -> set[frozenset]:
    return {frozenset(p) for p in pairs}


def blocky_slots(seed: int, k: int, size: int = 12) -> np.ndarray:
    """A random slot map of small blocks (values 0..k, every slot present), like a coarse segmentation."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, k + 1, (size // 3, size // 3))
    coarse.ravel()[:k] = np.arange(1, k + 1)                 # make sure every slot appears
    rng.shuffle(coarse.ravel())
    return np.kron(coarse, np.ones((3, 3), np.int64)).astype(np.int32)


# ---------------------------------------------------------------- geometry

def test_geometry_hand_made_box() -> None:
    H, W = 16, 8
    bboxes = np.array([[2, 4, 6, 12],        # x1, y1, x2, y2 -> 4 wide, 8 tall, box area 32
                       [0, 0, 8, 16]], np.float32)   # the whole image
    areas = np.array([16, 128], np.float32)
    scores = np.array([0.9, 0.25], np.float32)
    g = geometry(bboxes, areas, scores, (H, W))
    assert g.shape == (2, len(GEOM_FIELDS)) and g.dtype == np.float32
    assert GEOM_FIELDS == ("x1", "y1", "x2", "y2", "area", "fill", "score")
    np.testing.assert_allclose(g[0], [2 / 8, 4 / 16, 6 / 8, 12 / 16, 16 / 128, 16 / 32, 0.9], rtol=1e-6)
    np.testing.assert_allclose(g[1], [0, 0, 1, 1, 1, 1, 0.25], rtol=1e-6)


def test_geometry_degenerate_box_is_finite() -> None:
    g = geometry(np.array([[3, 3, 3, 5]], np.float32), np.array([0], np.float32),
                 np.array([1.0], np.float32), (10, 10))
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g[0], [0.3, 0.3, 0.3, 0.5, 0, 0, 1])


# ---------------------------------------------------------------- adjacency

@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
def test_adjacency_hand_made(dtype: type) -> None:
    pairs = adjacency(SLOTS.astype(dtype))
    assert all(isinstance(i, int) and isinstance(j, int) for i, j in pairs)
    assert all(i != j for i, j in pairs)
    assert undirected(pairs) == SLOTS_ADJ
    assert frozenset((0, 2)) not in undirected(pairs), "diagonal-only contact must not be adjacent"
    assert frozenset((1, 2)) not in undirected(pairs), "diagonal-only contact must not be adjacent"


def test_adjacency_diagonal_only() -> None:
    slots = np.array([[1, 0],
                      [0, 2]], np.int32)
    assert adjacency(slots) == set()
    assert adjacency(slots.T.copy()) == set()
    assert adjacency(np.array([[0, 1], [2, 0]], np.int32)) == set()


def test_adjacency_ignores_void_and_single_slot() -> None:
    assert adjacency(np.zeros((4, 4), np.int32)) == set()
    assert adjacency(np.ones((4, 4), np.int32)) == set()
    assert adjacency(np.array([[1, 0, 2]], np.int32)) == set()
    assert undirected(adjacency(np.array([[1, 2]], np.int32))) == {frozenset((0, 1))}
    assert undirected(adjacency(np.array([[1], [2]], np.int32))) == {frozenset((0, 1))}


# ---------------------------------------------------------------- centroids and knn

def test_centroids_hand_made() -> None:
    slots = np.array([[1, 1, 0, 0],
                      [0, 0, 0, 2]], np.int32)
    c = centroids(slots, 2)
    assert c.shape == (2, 2)
    np.testing.assert_allclose(c, [[0.5 / 4, 0.0], [3 / 4, 1 / 2]])


def test_knn_picks_nearest_never_self() -> None:
    pts = np.array([[0.0, 0], [1, 0], [3, 0], [7, 0]])
    assert knn(pts, 1) == {(0, 1), (1, 0), (2, 1), (3, 2)}
    assert knn(pts, 2) == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 1), (2, 0), (3, 2), (3, 1)}
    everyone = {(i, j) for i in range(4) for j in range(4) if i != j}
    assert knn(pts, 3) == everyone
    assert knn(pts, 10) == everyone                       # more neighbours asked than exist
    assert knn(pts, 0) == set()


def test_knn_duplicate_points_never_self() -> None:
    pts = np.zeros((3, 2))
    got = knn(pts, 1)
    assert len(got) == 3 and all(i != j for i, j in got)
    assert all(i != j for i, j in knn(pts, 5))


def test_knn_small_inputs() -> None:
    assert knn(np.zeros((0, 2)), 3) == set()
    assert knn(np.zeros((1, 2)), 3) == set()
    assert knn(np.array([[0.0, 0], [1, 1]]), 3) == {(0, 1), (1, 0)}


def test_knn_on_slot_centroids() -> None:
    # three blobs left to right: the middle one is nearest to both others
    slots = np.zeros((4, 12), np.int32)
    slots[:, 0:2], slots[:, 4:7], slots[:, 10:12] = 1, 2, 3
    assert knn(centroids(slots, 3), 1) == {(0, 1), (1, 0), (2, 1)}


# ---------------------------------------------------------------- edges

def assert_valid_edges(e: np.ndarray, k: int) -> None:
    assert e.dtype == np.int32
    assert e.ndim == 2 and e.shape[0] == 2
    pairs = list(zip(e[0].tolist(), e[1].tolist()))
    assert len(set(pairs)) == len(pairs), "duplicate edges"
    assert pairs == sorted(pairs), "edges must be sorted by (source, target)"
    assert all(i != j for i, j in pairs), "self loop"
    assert set(pairs) == {(j, i) for i, j in pairs}, "not symmetric"
    if e.size:
        assert e.min() >= 0 and e.max() < k


@pytest.mark.parametrize("mode", EDGE_MODES)
@pytest.mark.parametrize("seed, k, kn", [(0, 5, 2), (1, 8, 3), (2, 3, 1), (3, 12, 4), (4, 6, 10)])
def test_edges_invariants_every_mode(mode: str, seed: int, k: int, kn: int) -> None:
    slots = blocky_slots(seed, k)
    e = edges(slots, k, mode, kn)
    assert_valid_edges(e, k)
    pairs = set(zip(e[0].tolist(), e[1].tolist()))
    if mode == "full":
        assert e.shape == (2, k * (k - 1))
    if mode in ("adjacency", "adjacency_knn"):
        assert undirected(adjacency(slots)) <= undirected(pairs)
    if mode in ("knn", "adjacency_knn"):
        assert knn(centroids(slots, k), kn) <= pairs
        assert all(len([j for i, j in pairs if i == n]) >= min(kn, k - 1) for n in range(k))


def test_edges_hand_made_adjacency() -> None:
    e = edges(SLOTS, 5, "adjacency", 3)
    assert e.tolist() == [[0, 1, 1, 2, 3, 4],
                          [1, 0, 4, 3, 2, 1]]
    assert_valid_edges(e, 5)


def test_edges_adjacency_knn_is_union() -> None:
    k, kn = 5, 1
    a = set(zip(*edges(SLOTS, k, "adjacency", kn).tolist()))
    n = set(zip(*edges(SLOTS, k, "knn", kn).tolist()))
    u = set(zip(*edges(SLOTS, k, "adjacency_knn", kn).tolist()))
    assert u == a | n
    assert n - a, "kNN should add links the adjacency lacks on this map"


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_edges_full(k: int) -> None:
    e = edges(blocky_slots(0, k), k, "full", 1)
    assert e.shape == (2, k * (k - 1))
    assert_valid_edges(e, k)


@pytest.mark.parametrize("mode", EDGE_MODES)
def test_edges_one_node(mode: str) -> None:
    slots = np.zeros((6, 6), np.int32)
    slots[1:4, 2:5] = 1
    e = edges(slots, 1, mode, 4)
    assert e.shape == (2, 0) and e.dtype == np.int32


@pytest.mark.parametrize("mode", ["", "Full", "radius", "knn_graph", None])
def test_edges_unknown_mode_raises(mode) -> None:
    with pytest.raises(ValueError, match="edge mode must be one of"):
        edges(SLOTS, 5, mode, 2)
