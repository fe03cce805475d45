"""Batches of similar samples (GSHN Algorithm 1, ASH-Nets Retrieve): greedy grouping by ITM-ranked
candidates, its similarity measures, and the `batches.parquet` table that carries the groups from
`reorder` to `pretrain`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.common.cli import StageError
from stages.data.pairs import Samples

SCHEMA = pa.schema([
    ("batch_id", pa.int32()),
    ("position", pa.int32()),
    ("sample_id", pa.string()),
    ("itm_score", pa.float32()),
])


ItcFn = Callable[[int, np.ndarray], np.ndarray]



def greedy_groups(candidates: np.ndarray, scores: np.ndarray, itc: ItcFn | np.ndarray, G: int,
                  seed: int) -> list[list[int]]:
    """Partition samples 0..N-1 into groups of G similar samples (anchor first).

    candidates (N, C) int: each anchor's recalled samples (entries < 0, the anchor itself and
    repeats are ignored); scores (N, C): their ITM scores (higher = better); itc: an (N, N) matrix
    of image(anchor) . text(sample) similarities or a function `itc(anchor, pool) -> sims`.
    Anchors are visited in a seeded order; an unassigned anchor takes its best-scored unassigned
    candidates, then (if still short of G) the unassigned samples most ITC-similar to it.
    Every sample is in exactly one group; all groups have G members except possibly the last,
    which is never of size 1 when N >= 2 (a last singleton joins the previous group).
    """
    candidates = np.asarray(candidates)
    scores = np.asarray(scores, dtype=np.float64)
    if candidates.ndim != 2 or scores.shape != candidates.shape:
        raise ValueError(f"candidates {candidates.shape} and scores {scores.shape} must be the same (N, C) shape")
    if G < 2:
        raise ValueError(f"group size G must be >= 2, got {G}")
    N = candidates.shape[0]
    if callable(itc):
        sim: ItcFn = itc
    else:
        matrix = np.asarray(itc)
        if matrix.shape != (N, N):
            raise ValueError(f"itc matrix must be ({N}, {N}), got {matrix.shape}")
        sim = lambda a, pool: matrix[a, pool]  # noqa: E731
    # Candidates by decreasing score (stable: equal scores keep recall order), once for all anchors.
    ranked = np.take_along_axis(candidates, np.argsort(-scores, axis=1, kind="stable"), axis=1)
    assigned = np.zeros(N, dtype=bool)
    groups: list[list[int]] = []
    for a in np.random.default_rng(seed).permutation(N).tolist():
        if assigned[a]:
            continue
        assigned[a] = True
        group = [a]
        for c in ranked[a].tolist():
            if len(group) == G:
                break
            if 0 <= c < N and not assigned[c]:
                assigned[c] = True
                group.append(c)
        need = G - len(group)
        if need > 0:
            pool = np.flatnonzero(~assigned)
            if pool.size:
                s = np.asarray(sim(a, pool), dtype=np.float64)
                if need < pool.size:
                    top = np.argpartition(-s, need - 1)[:need]
                else:
                    top = np.arange(pool.size)
                top = top[np.lexsort((pool[top], -s[top]))]      # best first, ties by index
                take = pool[top]
                assigned[take] = True
                group += take.tolist()
        groups.append(group)
    if len(groups) > 1 and len(groups[-1]) == 1:
        last = groups.pop()      # (not `groups[-2] += groups.pop()`: the index is taken before the pop)
        groups[-1] += last
    return groups



def group_similarity(groups: list[list[int]], img: np.ndarray, txt: np.ndarray) -> float:
    """Mean ITC similarity of each member's image with the text of every OTHER member of its group."""
    total, pairs = 0.0, 0
    for g in groups:
        if len(g) < 2:
            continue
        s = img[g] @ txt[g].T
        total += float(s.sum() - np.trace(s))
        pairs += len(g) * (len(g) - 1)
    return total / max(pairs, 1)



def anchor_similarity(groups: list[list[int]], img: np.ndarray, txt: np.ndarray) -> float:
    """Mean ITC similarity of each group's first member's (the anchor's) image with the other members' texts."""
    sims = [float(s) for g in groups for s in txt[g[1:]] @ img[g[0]]]
    return float(np.mean(sims)) if sims else 0.0



def partition_sizes(N: int, G: int) -> list[int]:
    """The group sizes `greedy_groups` gives N >= 2 samples in groups of G, without running it: G each, the
    remainder last, a last singleton joined to the group before it."""
    sizes = [G] * (N // G) + ([N % G] if N % G else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return sizes



def random_groups(sizes: list[int], N: int, seed: int) -> list[list[int]]:
    """Random groups with the given sizes (a seeded permutation cut in order)."""
    perm = np.random.default_rng([seed, 3]).permutation(N).tolist()
    out, start = [], 0
    for n in sizes:
        out.append(perm[start: start + n])
        start += n
    return out



def member_scores(groups: list[list[int]], cand: np.ndarray, cand_scores: np.ndarray
                  ) -> tuple[list[list[float]], list[tuple[int, int]]]:
    """ITM scores of members vs their anchor where recall scored them; (group, position) of the rest
    (each anchor itself, and members filled by ITC), to be scored afterwards."""
    rows: list[list[float]] = []
    missing: list[tuple[int, int]] = []
    for g, group in enumerate(groups):
        a = group[0]
        known = dict(zip(cand[a].tolist(), cand_scores[a].tolist()))
        row = [float("nan")] * len(group)
        missing.append((g, 0))
        for p, m in enumerate(group[1:], 1):
            if m in known:
                row[p] = known[m]
            else:
                missing.append((g, p))
        rows.append(row)
    return rows, missing



def check_partition(groups: list[list[int]], N: int) -> None:
    flat = [i for g in groups for i in g]
    if len(flat) != N or set(flat) != set(range(N)):
        raise AssertionError(f"groups are not a partition of {N} samples ({len(flat)} members)")



def read_groups(path: str | Path, samples: Samples) -> list[list[int]]:
    """batches.parquet -> groups as indices into `samples` (batch order, anchor first), for
    `stages.data.pairs.grouped_plan`. Every sample must be in exactly one group and nothing else."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path} not found: run `dvc repro reorder` first")
    table = pq.read_table(path)
    if not table.schema.equals(SCHEMA):
        raise StageError(f"{path}: columns {table.schema} do not match the reorder schema {SCHEMA}")
    index = {image_id: i for i, image_id in enumerate(samples.image_ids)}
    batch = table.column("batch_id").to_numpy()
    pos = table.column("position").to_numpy()
    ids = table.column("sample_id").to_pylist()
    unknown = sorted({s for s in ids if s not in index})
    listed = set(ids)
    missing = [s for s in samples.image_ids if s not in listed]
    dup = len(ids) - len(listed)
    if unknown or missing or dup:
        def few(xs: list[str]) -> str:
            return ", ".join(xs[:5]) + (f" ... ({len(xs)} in all)" if len(xs) > 5 else "")
        parts = []
        if missing:
            parts.append(f"{len(missing)} train samples missing: {few(missing)}")
        if unknown:
            parts.append(f"{len(unknown)} unknown sample ids: {few(unknown)}")
        if dup:
            parts.append(f"{dup} sample ids listed more than once")
        raise StageError(f"{path} does not match the train samples ({'; '.join(parts)}): rerun `dvc repro reorder`")
    groups: dict[int, list[tuple[int, int]]] = {}
    for b, p, s in zip(batch.tolist(), pos.tolist(), ids):
        groups.setdefault(b, []).append((p, index[s]))
    return [[i for _, i in sorted(groups[b])] for b in sorted(groups)]
