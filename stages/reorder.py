"""Stage `reorder` (GSHN Algorithm 1, III.D "Encoder Input"; ASH-Nets III.A.2 Retrieve(Pic_k, phi)).

Between the two pretraining phases, group the training pairs into batches of similar samples so
that phase 2's SNN (batch as time) sees a stream of related images:

1. Embed every train sample (image + its caption 0) with the warm phase-1 model: normalised
   256-d ITC image and text embeddings.
2. Recall: faiss `IndexFlatIP` over the TEXT embeddings; each anchor image gets its top
   `reorder.candidates` other samples by image->text ITC similarity (the anchor itself excluded).
3. Re-rank each anchor's candidates by the ITM head: softmax(itm_logits(candidate text, anchor image))[1].
4. Greedy grouping (`greedy_groups`, a pure function): anchors are visited in a seeded order; an
   unassigned anchor starts a group of G = reorder.retrieve_number (null: pretrain.batch_size) with
   its best-ITM UNASSIGNED candidates; if its candidates run out, the group is filled with the
   unassigned samples of highest ITC similarity to the anchor. Every sample lands in exactly one
   group; only the last group can be smaller, and one of size 1 joins the previous group (ITM hard
   negatives need >= 2 samples per batch).

Outputs (data/reorder/, each written atomically):
- batches.parquet: batch_id (int32), position (int32; 0 = the anchor), sample_id (string: the
  image id), itm_score (float32: ITM match probability of the member's caption-0 text with the
  group anchor's image; for the anchor, that of its own positive pair). Rows sorted by
  (batch_id, position); batch ids in the order the groups were formed.
- metrics.json: samples, groups, group sizes, within-group vs random-group ITC similarity, ITM
  scores, share of members recalled by ITM vs filled by ITC, seconds.

Choices
- Visual tokens are NOT kept for all samples (N x K x d floats: ~11 GB at N=1e5 for the paper
  width). They are recomputed per chunk of `reorder.batch_size` samples whenever ITM needs an
  anchor image; chunk boundaries and the spike-coding generator seed per chunk are the same in
  every pass, so recomputed tokens equal those of the embedding pass (bit for bit on CPU). The
  cost is one extra visual-encoder pass, small next to the N x candidates ITM joint passes.
  Memory: O(N x 256) embeddings + O(N x candidates) ids/scores + one chunk of tokens.
- The SNN runs with reset per sample (batch_as_time off) while embedding: with batch as time a
  sample's tokens would depend on which samples happen to share its embedding chunk.
- The ITC fill step compares the anchor's image with the texts of all unassigned samples (one
  matrix-vector product per group that needs filling, <= N/G groups): O(N^2 x 256 / G) at worst,
  fine for N up to ~1e5 (a few seconds to a minute on CPU).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from models.gshn import GSHN
from models.nodes import collate_nodes
from models.text import tokenize
from stages import layout, params
from stages.cli import EXPECTED, StageError, progress_enabled, set_threads, setup_logging
from stages.modelcfg import build_model
from stages.pairs import PairCollator, Samples, feature_meta, load_samples
from storage.atomic import atomic_path, clean_temporaries, write_json

log = logging.getLogger("stages.reorder")

OUT = layout.DATA / "reorder"
BATCHES = OUT / "batches.parquet"
METRICS = OUT / "metrics.json"
WARM = layout.DATA / "checkpoints" / "pretrain_warmup" / "model.pt"
SCHEMA = pa.schema([
    ("batch_id", pa.int32()),
    ("position", pa.int32()),
    ("sample_id", pa.string()),
    ("itm_score", pa.float32()),
])

# itc(anchor, pool) -> ITC similarity of the anchor's image with the texts of the samples in `pool`.
ItcFn = Callable[[int, np.ndarray], np.ndarray]


# ------------------------------------------------------------------------------- pure grouping

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


def random_groups(sizes: list[int], N: int, seed: int) -> list[list[int]]:
    """Random groups with the given sizes (a seeded permutation cut in order)."""
    perm = np.random.default_rng([seed, 3]).permutation(N).tolist()
    out, start = [], 0
    for n in sizes:
        out.append(perm[start: start + n])
        start += n
    return out


def recall(img: np.ndarray, txt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss IndexFlatIP over the texts: each image's top-k other samples -> (ids (N, k), sims (N, k))."""
    import faiss

    img = np.ascontiguousarray(img, dtype=np.float32)
    txt = np.ascontiguousarray(txt, dtype=np.float32)
    N = txt.shape[0]
    if not 1 <= k <= N - 1:
        raise ValueError(f"k={k} must be in 1..{N - 1}")
    index = faiss.IndexFlatIP(txt.shape[1])
    index.add(txt)
    D, I = index.search(img, k + 1)
    keep = I != np.arange(N)[:, None]
    keep[keep.all(1), -1] = False        # the anchor was not in its own top k+1: drop the (k+1)-th
    return I[keep].reshape(N, k).astype(np.int64), D[keep].reshape(N, k)


# --------------------------------------------------------------------------------- the model side

@contextlib.contextmanager
def per_sample_snn(model: GSHN) -> Iterator[None]:
    """Run the SNN from a reset state for every sample (no state shared across an embedding chunk)."""
    snns = [b.snn for b in model.visual.spiking_branches()]
    before = [s.batch_as_time for s in snns]
    try:
        for s in snns:
            s.batch_as_time = False
        yield
    finally:
        for s, b in zip(snns, before):
            s.batch_as_time = b


class Scorer:
    """ITC embeddings and ITM scores of the samples (caption 0 each) with a fixed model."""

    def __init__(self, model: GSHN, samples: Samples, K: int, max_text_len: int, batch_size: int, seed: int,
                 device: torch.device, progress: bool) -> None:
        self.model, self.N, self.K, self.bs = model, len(samples), K, batch_size
        self.seed, self.device, self.progress = seed, device, progress
        self.collator = PairCollator(samples, K, max_text_len)
        ids, mask = tokenize(self.collator.tokenizer, [c[0] for c in samples.captions], max_text_len)
        self.ids, self.mask = ids, mask

    def close(self) -> None:
        self.collator.close()

    def chunks(self) -> int:
        return -(-self.N // self.bs)

    def _text(self, idx: np.ndarray | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        ids, mask = self.ids[idx], self.mask[idx]
        L = int(mask.sum(1).max())          # pad to the longest in the batch, as in training
        return ids[:, :L].to(self.device), mask[:, :L].to(self.device)

    def visual(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Visual tokens and node mask of chunk `chunk` (same values on every call)."""
        idx = list(range(chunk * self.bs, min(self.N, (chunk + 1) * self.bs)))
        nodes = collate_nodes(self.collator.nodes(idx), self.K).to(self.device)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(np.random.SeedSequence([self.seed, chunk]).generate_state(1)[0]))
        return self.model.visual(nodes, generator=gen).tokens, nodes.node_mask

    def embed(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 256) normalised ITC image and text embeddings (float32)."""
        img, txt = [], []
        for chunk in tqdm(range(self.chunks()), desc="reorder embed", unit="batch", disable=not self.progress):
            V, nmask = self.visual(chunk)
            ids, tmask = self._text(range(chunk * self.bs, chunk * self.bs + V.shape[0]))
            i, t = self.model.itc.embed(*self.model.unimodal(V, nmask, ids, tmask))
            img.append(i.float().cpu().numpy()), txt.append(t.float().cpu().numpy())
        return np.concatenate(img), np.concatenate(txt)

    def itm(self, image: np.ndarray, text: np.ndarray, desc: str) -> np.ndarray:
        """ITM match probability of (image of sample image[p], caption-0 text of sample text[p]) per pair p."""
        image, text = np.asarray(image, np.int64), np.asarray(text, np.int64)
        out = np.empty(len(image), np.float32)
        order = np.argsort(image, kind="stable")
        chunk_of = image[order] // self.bs
        bounds = np.flatnonzero(np.diff(chunk_of)) + 1
        with tqdm(total=len(image), desc=desc, unit="pair", disable=not self.progress) as bar:
            for part in (np.split(order, bounds) if len(order) else []):   # pairs of one image chunk
                chunk = int(image[part[0]] // self.bs)
                V, nmask = self.visual(chunk)
                for s in range(0, len(part), self.bs):
                    p = part[s: s + self.bs]
                    local = torch.as_tensor(image[p] - chunk * self.bs, device=self.device)
                    ids, tmask = self._text(text[p])
                    logits = self.model.itm_logits(ids, tmask, V[local], nmask[local])
                    out[p] = torch.softmax(logits.float(), -1)[:, 1].cpu().numpy()
                    bar.update(len(p))
        return out


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("pretrain.device=cuda but no CUDA device is available")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def load_warm(model: GSHN, path: Path = WARM) -> None:
    if not path.is_file():
        raise StageError(f"{path} not found: run `dvc repro pretrain_warmup` first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise StageError(f"{path} is not a readable weights-only state dict ({e}): "
                         f"rerun `dvc repro pretrain_warmup`") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise StageError(f"{path} does not fit the model of params.yaml `model` (changed since pretrain_warmup? "
                         f"rerun `dvc repro pretrain_warmup`): {str(e)[:500]}") from None


# ------------------------------------------------------------------------------------- the stage

def run() -> dict[str, Any]:
    t0 = time.perf_counter()
    pre: params.PretrainParams = params.load("pretrain")
    set_threads(pre.threads)
    cfg: params.ReorderParams = params.load("reorder")
    mcfg: params.ModelParams = params.load("model")
    G = cfg.retrieve_number or pre.batch_size
    if not WARM.is_file():
        raise StageError(f"{WARM} not found: run `dvc repro pretrain_warmup` first")
    samples = load_samples(pre.datasets, "train")
    N = len(samples)
    if N < 2:
        raise StageError(f"reorder needs at least 2 train samples in {pre.datasets}, got {N}")
    seen: dict[str, str] = {}
    for image_id, ds in zip(samples.image_ids, samples.datasets):
        if image_id in seen:
            raise StageError(f"image id {image_id!r} is in both {seen[image_id]} and {ds}: "
                             f"batches.parquet names samples by image id, which must be unique")
        seen[image_id] = ds
    C, K = feature_meta(pre.datasets)
    device = resolve_device(pre.device)
    k = min(cfg.candidates, N - 1)
    log.info("reorder: %d train samples of %s, groups of %d, %d candidates (ITC recall, ITM re-rank) on %s",
             N, pre.datasets, G, k, device)

    torch.manual_seed(pre.seed)
    model = build_model(mcfg, C, K, 1)
    load_warm(model)
    model.to(device).eval()
    clean_temporaries(OUT)
    scorer = Scorer(model, samples, K, mcfg.max_text_len, cfg.batch_size, pre.seed, device, progress_enabled())
    try:
        with torch.inference_mode(), per_sample_snn(model):
            img, txt = scorer.embed()
            cand, _ = recall(img, txt, k)
            cand_scores = scorer.itm(np.repeat(np.arange(N), k), cand.ravel(), "reorder ITM").reshape(N, k)
            groups = greedy_groups(cand, cand_scores, lambda a, pool: txt[pool] @ img[a], G, pre.seed)
            rows, missing = member_scores(groups, cand, cand_scores)
            # anchors' own pairs and members filled by ITC were never ITM-scored against their anchor
            anchors = np.array([groups[g][0] for g, _ in missing])
            members = np.array([groups[g][p] for g, p in missing])
            for (g, p), score in zip(missing, scorer.itm(anchors, members, "reorder ITM (anchors, filled)")):
                rows[g][p] = float(score)
    finally:
        scorer.close()

    check_partition(groups, N)
    table = pa.Table.from_pydict({
        "batch_id": [b for b, g in enumerate(groups) for _ in g],
        "position": [p for g in groups for p in range(len(g))],
        "sample_id": [samples.image_ids[i] for g in groups for i in g],
        "itm_score": [s for r in rows for s in r],
    }, schema=SCHEMA)
    with atomic_path(BATCHES) as tmp:
        pq.write_table(table, tmp)

    sizes = [len(g) for g in groups]
    rand = random_groups(sizes, N, pre.seed)
    members = [s for r in rows for s in r[1:]]
    filled = sum(1 for g, p in missing if p > 0)
    metrics = {
        "samples": N,
        "groups": len(groups),
        "group_size": G,
        "group_size_min": min(sizes),
        "group_size_max": max(sizes),
        "candidates": k,
        "within_group_itc": group_similarity(groups, img, txt),
        "random_group_itc": group_similarity(rand, img, txt),
        "anchor_itc": anchor_similarity(groups, img, txt),
        "random_anchor_itc": anchor_similarity(rand, img, txt),
        "mean_itm_score": float(np.mean(members)) if members else 0.0,
        "mean_anchor_itm_score": float(np.mean([r[0] for r in rows])),
        "filled_by_itc": filled / max(len(members), 1),   # share of members not among the anchor's candidates
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(METRICS, metrics)
    log.info("reorder: %d samples -> %d groups (sizes %d..%d); within-group ITC %.4f vs random groups %.4f "
             "(anchor vs members %.4f vs %.4f); mean ITM score %.4f (anchors' own pairs %.4f); "
             "%.1f%% filled by ITC; %.1f s", N, len(groups), min(sizes), max(sizes), metrics["within_group_itc"],
             metrics["random_group_itc"], metrics["anchor_itc"], metrics["random_anchor_itc"],
             metrics["mean_itm_score"], metrics["mean_anchor_itm_score"], 100 * metrics["filled_by_itc"],
             metrics["seconds"])
    return metrics


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
    `stages.pairs.grouped_plan`. Every sample must be in exactly one group and nothing else."""
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


def main(argv: list[str] | None = None) -> None:
    """`python -m stages.reorder`: expected errors exit 2 with one clear line."""
    argparse.ArgumentParser(prog="python -m stages.reorder",
                            description="group the train pairs into batches of similar samples").parse_args(argv)
    setup_logging()
    try:
        run()
    except EXPECTED as e:
        log.error("reorder failed: %s", e)
        sys.exit(2)


if __name__ == "__main__":
    main()
