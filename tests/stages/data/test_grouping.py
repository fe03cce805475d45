"""stages.data.grouping: greedy grouping (pure) and its similarity measures; faiss recall."""
from __future__ import annotations

import numpy as np
import pytest

from stages.data import grouping
from stages.evaluation import itm

# ------------------------------------------------------------------------------ greedy_groups

def _random_data(N: int, C: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(N, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    cand = np.argsort(-(sim - 10 * np.eye(N)), axis=1)[:, :C]
    scores = rng.random((N, C))
    return emb, sim, cand, scores


def _is_partition(groups, N):
    flat = [i for g in groups for i in g]
    return len(flat) == N and sorted(flat) == list(range(N))


@pytest.mark.parametrize("N,G", [(50, 8), (49, 8), (48, 8), (7, 8), (2, 2), (17, 4), (10, 3)])
def test_greedy_groups_partition_and_sizes(N, G):
    _, sim, cand, scores = _random_data(N, min(5, N - 1))
    groups = grouping.greedy_groups(cand, scores, sim, G, seed=1)
    assert _is_partition(groups, N)
    sizes = [len(g) for g in groups]
    assert all(s == G for s in sizes[:-1]), sizes
    assert sizes[-1] >= 2
    if N % G == 1 and N > G:      # a last singleton joined the previous group
        assert sizes[-1] == G + 1 and len(groups) == N // G
    else:
        assert sizes[-1] == (N % G or G) if N >= G else sizes == [N]
    assert grouping.partition_sizes(N, G) == sizes     # what `pretrain.reorder: false` cuts its random groups to


def test_greedy_groups_deterministic_and_callable_equals_matrix():
    emb, sim, cand, scores = _random_data(60, 6)
    a = grouping.greedy_groups(cand, scores, sim, 8, seed=3)
    assert a == grouping.greedy_groups(cand, scores, sim, 8, seed=3)
    assert a == grouping.greedy_groups(cand, scores, lambda i, pool: emb[pool] @ emb[i], 8, seed=3)
    assert a != grouping.greedy_groups(cand, scores, sim, 8, seed=4)


def test_greedy_groups_follows_itm_scores():
    """Each anchor takes its best-SCORED unassigned candidates (not its first-recalled ones, nor
    the most ITC-similar: the ITC matrix here is the opposite of the scores)."""
    N, G = 12, 3
    rng = np.random.default_rng(2)
    P = rng.random((N, N))
    cand = np.array([[j for j in range(N) if j != i] for i in range(N)])
    scores = np.take_along_axis(P, cand, 1)
    groups = grouping.greedy_groups(cand, scores, -P, G, seed=0)
    assigned: set[int] = set()
    for g in groups:
        a = g[0]
        assigned.add(a)
        free = [c for c in cand[a] if c not in assigned]
        assert g[1:] == sorted(free, key=lambda c: -P[a, c])[: G - 1]
        assigned.update(g[1:])


@pytest.mark.parametrize("C", [7, 3])
def test_greedy_groups_recovers_planted_clusters(C):
    """4 well-separated clusters of 8, G = 8: the groups are exactly the clusters, whether the
    members come from ITM-ranked candidates (C = 7) or mostly from the ITC fill (C = 3)."""
    rng = np.random.default_rng(0)
    centres = np.eye(4, 32) * 5
    labels = np.repeat(np.arange(4), 8)
    perm = rng.permutation(32)
    labels = labels[perm]
    img = centres[labels] + 0.3 * rng.normal(size=(32, 32))
    txt = centres[labels] + 0.3 * rng.normal(size=(32, 32))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    sim = img @ txt.T
    cand, _ = itm.recall(img.astype(np.float32), txt.astype(np.float32), C)
    scores = np.take_along_axis(sim, cand, 1) + 0.01 * rng.random(cand.shape)   # a noisy "ITM"
    groups = grouping.greedy_groups(cand, scores, sim, 8, seed=0)
    assert sorted(sorted(g) for g in groups) == sorted(sorted(np.flatnonzero(labels == c).tolist()) for c in range(4))
    within = grouping.group_similarity(groups, img, txt)
    rand = grouping.group_similarity(grouping.random_groups([len(g) for g in groups], 32, 0), img, txt)
    assert within > 0.8 and within > rand + 0.5


def test_within_group_similarity_beats_random_groups():
    emb, sim, cand, _ = _random_data(200, 16, seed=5)
    scores = np.take_along_axis(sim, cand, 1)
    groups = grouping.greedy_groups(cand, scores, sim, 8, seed=0)
    rand = grouping.random_groups([len(g) for g in groups], 200, 0)
    assert _is_partition(rand, 200)
    assert grouping.group_similarity(groups, emb, emb) > grouping.group_similarity(rand, emb, emb) + 0.1


def test_recall_excludes_the_anchor():
    emb, sim, _, _ = _random_data(30, 1)
    ids, sims = itm.recall(emb.astype(np.float32), emb.astype(np.float32), 5)
    assert ids.shape == (30, 5) and not (ids == np.arange(30)[:, None]).any()
    expect = np.argsort(-(sim - 10 * np.eye(30)), axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(ids, 1), np.sort(expect, 1))
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_greedy_groups_rejects_bad_input():
    with pytest.raises(ValueError):
        grouping.greedy_groups(np.zeros((4, 2), int), np.zeros((4, 3)), np.zeros((4, 4)), 2, 0)
    with pytest.raises(ValueError):
        grouping.greedy_groups(np.zeros((4, 2), int), np.zeros((4, 2)), np.zeros((4, 4)), 1, 0)
