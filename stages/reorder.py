"""Stage `reorder`: the training pairs grouped into batches of similar samples for pretraining phase 2
(GSHN Algorithm 1, III.D "Encoder Input"; ASH-Nets III.A.2 Retrieve(Pic_k, phi)).

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

With `pretrain.reorder: false` the stage runs no model: the groups are a seeded shuffle of the train samples
(`random_groups`, the same draw `random_group_itc` measures) cut to the sizes greedy grouping gives
(`partition_sizes`), so phase 2 trains on as many batches of the same sizes at equal budget, without
reordering (GSHN Table VI's CL part, ASH-Nets Table XII). Its itm_score column is NaN (nothing scored) and its
metrics hold no ITC or ITM figures.

Outputs (data/reorder/, each written atomically):
- batches.parquet: batch_id (int32), position (int32; 0 = the anchor), sample_id (string: the
  image id), itm_score (float32: ITM match probability of the member's caption-0 text with the
  group anchor's image; for the anchor, that of its own positive pair). Rows sorted by
  (batch_id, position); batch ids in the order the groups were formed.
- metrics.json: `reordered` (1, or 0 for random groups), samples, groups, group sizes, within-group vs
  random-group ITC similarity, ITM scores, share of members recalled by ITM vs filled by ITC, seconds; its
  `HEADLINE` keys (`reordered` alone for random groups) also go to the git-tracked metrics/reorder.json that
  `dvc exp show` compares.

Choices
- Visual tokens are NOT kept for all samples (N x K x d floats: too many for the papers' datasets at
  the paper width). They are recomputed per chunk of `reorder.batch_size` samples whenever ITM needs an
  anchor image; chunk boundaries and the spike-coding generator seed per chunk are the same in
  every pass, so recomputed tokens equal those of the embedding pass (bit for bit on CPU). The
  cost is one extra visual-encoder pass, small next to the N x candidates ITM joint passes.
  Memory: O(N x 256) embeddings + O(N x candidates) ids/scores + one chunk of tokens.
- The SNN runs with reset per sample (batch_as_time off) while embedding: with batch as time a
  sample's tokens would depend on which samples happen to share its embedding chunk.
- The ITC fill step compares the anchor's image with the texts of all unassigned samples (one
  matrix-vector product per group that needs filling, <= N/G groups): O(N^2 x 256 / G) at worst.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from stages.common import params, paths
from stages.common.cli import StageError, progress_enabled, run_stage, set_threads
from stages.common.device import resolve_device
from stages.common.headline import write_headline
from stages.common.model_factory import build_model
from stages.common.weights import load_into
from stages.data.grouping import (
    SCHEMA,
    anchor_similarity,
    check_partition,
    greedy_groups,
    group_similarity,
    member_scores,
    partition_sizes,
    random_groups,
)
from stages.data.pairs import Samples, feature_meta, load_samples
from stages.evaluation.itm import Scorer, recall
from storage.atomic import atomic_path, clean_temporaries, write_json

log = logging.getLogger("stages.reorder")

WARM = paths.pretrained_weights("warmup")
# metrics/reorder.json; random groups (pretrain.reorder: false) have `reordered` alone
HEADLINE = ("reordered", "within_group_itc", "random_group_itc", "mean_itm_score", "filled_by_itc")


def train_samples(datasets: list[str]) -> Samples:
    """The pretraining train samples, refused when fewer than 2 or when an image id repeats."""
    samples = load_samples(datasets, "train")
    if len(samples) < 2:
        raise StageError(f"reorder needs at least 2 train samples in {datasets}, got {len(samples)}")
    seen: dict[str, str] = {}
    for image_id, ds in zip(samples.image_ids, samples.datasets):
        if image_id in seen:
            raise StageError(f"image id {image_id!r} is in both {seen[image_id]} and {ds}: "
                             f"batches.parquet names samples by image id, which must be unique")
        seen[image_id] = ds
    return samples


@dataclass
class Grouping:
    groups: list[list[int]]        # sample indices, the anchor first
    rows: list[list[float]]        # ITM score of each member with its group's anchor image
    missing: list[tuple[int, int]]  # (group, position) scored after grouping: anchors, members filled by ITC
    img: np.ndarray                # ITC embeddings (N, 256)
    txt: np.ndarray


@torch.inference_mode()
def group(scorer: Scorer, k: int, G: int, seed: int) -> Grouping:
    """Embed, recall k candidates per anchor by ITC, re-rank them by ITM, group greedily, then score the
    (anchor, member) pairs the re-ranking never saw."""
    # the model is in eval mode: every sample runs the SNN from a reset state (README, the evaluation protocol)
    img, txt = scorer.embed()
    cand, _ = recall(img, txt, k)
    cand_scores = scorer.itm(np.repeat(np.arange(scorer.N), k), cand.ravel(), "reorder ITM").reshape(scorer.N, k)
    groups = greedy_groups(cand, cand_scores, lambda a, pool: txt[pool] @ img[a], G, seed)
    rows, missing = member_scores(groups, cand, cand_scores)
    anchors = np.array([groups[g][0] for g, _ in missing])
    members = np.array([groups[g][p] for g, p in missing])
    for (g, p), score in zip(missing, scorer.itm(anchors, members, "reorder ITM (anchors, filled)")):
        rows[g][p] = float(score)
    return Grouping(groups, rows, missing, img, txt)


def summary(res: Grouping, G: int, k: int, seed: int) -> dict[str, Any]:
    """metrics.json: group sizes, within-group vs random-group ITC similarity, ITM scores, ITC fill share."""
    groups, rows, img, txt = res.groups, res.rows, res.img, res.txt
    sizes = [len(g) for g in groups]
    rand = random_groups(sizes, len(img), seed)
    members = [s for r in rows for s in r[1:]]
    filled = sum(1 for g, p in res.missing if p > 0)
    return sizes_summary(groups, G, reordered=True) | {
        "candidates": k,
        "within_group_itc": group_similarity(groups, img, txt),
        "random_group_itc": group_similarity(rand, img, txt),
        "anchor_itc": anchor_similarity(groups, img, txt),
        "random_anchor_itc": anchor_similarity(rand, img, txt),
        "mean_itm_score": float(np.mean(members)) if members else 0.0,
        "mean_anchor_itm_score": float(np.mean([r[0] for r in rows])),
        "filled_by_itc": filled / max(len(members), 1),   # share of members not among the anchor's candidates
    }


def sizes_summary(groups: list[list[int]], G: int, reordered: bool) -> dict[str, Any]:
    """The metrics both modes give: whether the groups are ITM-reordered (1) or random (0), their count and sizes."""
    sizes = [len(g) for g in groups]
    return {"reordered": int(reordered), "samples": sum(sizes), "groups": len(groups), "group_size": G,
            "group_size_min": min(sizes), "group_size_max": max(sizes)}


def write_groups(samples: Samples, groups: list[list[int]], rows: list[list[float]],
                 metrics: dict[str, Any]) -> None:
    """batches.parquet, metrics.json and the headline (the `HEADLINE` keys that `metrics` has)."""
    check_partition(groups, len(samples))
    table = pa.Table.from_pydict({
        "batch_id": [b for b, g in enumerate(groups) for _ in g],
        "position": [p for g in groups for p in range(len(g))],
        "sample_id": [samples.image_ids[i] for g in groups for i in g],
        "itm_score": [s for r in rows for s in r],
    }, schema=SCHEMA)
    with atomic_path(paths.reorder_batches()) as tmp:
        pq.write_table(table, tmp)
    write_json(paths.reorder_metrics(), metrics)
    write_headline(paths.headline("reorder"), {k: metrics[k] for k in HEADLINE if k in metrics})


def shuffled(samples: Samples, G: int, seed: int, t0: float) -> dict[str, Any]:
    """`pretrain.reorder: false`: seeded random groups of the sizes greedy grouping gives; no model runs."""
    N = len(samples)
    groups = random_groups(partition_sizes(N, G), N, seed)
    clean_temporaries(paths.reorder_dir())
    metrics = sizes_summary(groups, G, reordered=False) | {"seconds": round(time.perf_counter() - t0, 3)}
    write_groups(samples, groups, [[math.nan] * len(g) for g in groups], metrics)
    log.info("reorder: pretrain.reorder is false: %d samples -> %d seeded random groups (sizes %d..%d), no ITC or "
             "ITM scoring", N, metrics["groups"], metrics["group_size_min"], metrics["group_size_max"])
    return metrics


def run() -> dict[str, Any]:
    t0 = time.perf_counter()
    pre: params.PretrainParams = params.load("pretrain")
    set_threads(pre.threads)
    cfg: params.ReorderParams = params.load("reorder")
    mcfg: params.ModelParams = params.load("model")
    G = cfg.retrieve_number or pre.batch_size
    if not pre.reorder:
        return shuffled(train_samples(pre.datasets), G, pre.seed, t0)
    if cfg.candidates < 2 * G:
        raise StageError(f"reorder.candidates={cfg.candidates} must be at least twice the group size {G} "
                         f"(reorder.retrieve_number, or pretrain.batch_size when null): with fewer, a group runs out "
                         f"of ITM-ranked candidates and fills from ITC neighbours, so ITM decides nothing")
    if not WARM.is_file():
        raise StageError(f"{WARM} not found: run `dvc repro pretrain_warmup` first")
    samples = train_samples(pre.datasets)
    N = len(samples)
    C, K = feature_meta(pre.datasets)
    device = resolve_device(pre.device, "pretrain.device")
    k = min(cfg.candidates, N - 1)
    log.info("reorder: %d train samples of %s, groups of %d, %d candidates (ITC recall, ITM re-rank) on %s",
             N, pre.datasets, G, k, device)

    torch.manual_seed(pre.seed)
    model = build_model(mcfg, C, K, 1)
    load_into(model, WARM, "the model of params.yaml `model`", "dvc repro pretrain_warmup")
    model.to(device).eval()
    clean_temporaries(paths.reorder_dir())
    scorer = Scorer(model, samples, K, mcfg.max_text_len, cfg.batch_size, device, progress_enabled())
    try:
        res = group(scorer, k, G, pre.seed)
    finally:
        scorer.close()

    metrics = summary(res, G, k, pre.seed) | {"seconds": round(time.perf_counter() - t0, 3)}
    write_groups(samples, res.groups, res.rows, metrics)
    log.info("reorder: %d samples -> %d groups (sizes %d..%d); within-group ITC %.4f vs random groups %.4f "
             "(anchor vs members %.4f vs %.4f); mean ITM score %.4f (anchors' own pairs %.4f); "
             "%.1f%% filled by ITC; %.1f s", N, metrics["groups"], metrics["group_size_min"],
             metrics["group_size_max"], metrics["within_group_itc"], metrics["random_group_itc"],
             metrics["anchor_itc"], metrics["random_anchor_itc"], metrics["mean_itm_score"],
             metrics["mean_anchor_itm_score"], 100 * metrics["filled_by_itc"], metrics["seconds"])
    return metrics


def main(argv: list[str] | None = None) -> None:
    run_stage("reorder", __doc__, run, argv)


if __name__ == "__main__":
    main()
