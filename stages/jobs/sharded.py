"""Per-shard work with resume: the shared engine of `segment` and `features`.

Items are split into fixed shards (by position, so the split never depends on timing).
Each shard is computed by a module-level worker function, written atomically as a tar,
then marked done by a small JSON manifest beside it (its index rows and rejects). A rerun
with the same fingerprint (params + inputs) keeps the finished shards and does the rest;
a different fingerprint starts afresh. Results are the same bytes however often the stage
was interrupted, and whichever executor ran the shards (this process, a pool of local
processes, or a Dask cluster: stages/jobs/executors.py).
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stages.common.params import ExecutorParams
from stages.jobs.executors import run_jobs
from storage.atomic import clean_temporaries, write_json
from storage.rejects import Rejects
from storage.shards import write_index
from storage.tables import table_path

log = logging.getLogger(__name__)
FINGERPRINT = "fingerprint.json"
# Where shards run never changes what they contain: finished shards survive a change of executor.
EXECUTOR_KEYS = frozenset(ExecutorParams.model_fields)


@dataclass(frozen=True)
class ShardJob:
    """One shard's work: write `path` from `items`; `config` is passed to the worker as is."""

    path: Path
    items: list[dict[str, Any]]
    config: dict[str, Any]


@dataclass
class ShardResult:
    index_rows: list[dict[str, Any]]
    rejects: list[dict[str, str]]
    stats: dict[str, int]


Worker = Callable[[ShardJob], ShardResult]


def plan(items: Sequence[dict[str, Any]], out: Path, pattern: str, shard_size: int,
         config: dict[str, Any]) -> list[ShardJob]:
    return [ShardJob(out / (pattern % i), list(items[s: s + shard_size]), config)
            for i, s in enumerate(range(0, len(items), shard_size))]


def _manifest(job: ShardJob) -> Path:
    return job.path.with_suffix(".json")


def _prepare_folder(out: Path, fp: str) -> None:
    """Keep finished shards only when they were made with the same fingerprint."""
    marker = out / FINGERPRINT
    same = marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fp
    if out.exists() and not same:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    clean_temporaries(out)
    if not same:
        write_json(marker, {"fingerprint": fp})


def run(jobs: list[ShardJob], worker: Worker, out: Path, fp: str, *, executor: ExecutorParams | None,
        source: str, desc: str, progress: bool = True) -> tuple[Rejects, dict[str, int]]:
    """Run every unfinished job on `executor` (None: in this process), then write the index.

    Returns all rejects and the summed stats. Each shard's manifest is written as soon as it
    finishes, so an interrupted run keeps every finished shard.
    """
    _prepare_folder(out, fp)
    done = {j.path: json.loads(_manifest(j).read_text()) for j in jobs if _manifest(j).is_file() and j.path.is_file()}
    todo = [j for j in jobs if j.path not in done]
    if done:
        log.info("resuming: %d of %d shards already complete", len(done), len(jobs))
    bar = tqdm(total=sum(len(j.items) for j in jobs), initial=sum(len(j.items) for j in jobs if j.path in done),
               desc=desc, unit="img", disable=not progress, mininterval=1.0)

    def finish(job: ShardJob, res: ShardResult) -> None:
        rec = {"index_rows": res.index_rows, "rejects": res.rejects, "stats": res.stats}
        write_json(_manifest(job), rec)
        done[job.path] = rec
        bar.update(len(job.items))

    for job, res in run_jobs(worker, todo, executor):
        finish(job, res)
    bar.close()

    rejects, index_rows, stats = Rejects(source), [], {}
    for job in jobs:  # in shard order, so the index and rejects are deterministic
        rec = done[job.path]
        index_rows += rec["index_rows"]
        rejects.rows += rec["rejects"]
        for k, v in rec["stats"].items():
            stats[k] = stats.get(k, 0) + v
    write_index(out, index_rows)
    return rejects, stats


def write_counts(out: Path, given: int, rejects: Rejects, stats: dict[str, int], **extra: int) -> dict[str, int]:
    """Write rejects.parquet and counts.json; given must equal accepted (stats["images"]) + rejected."""
    counts = {"given": given, "accepted": stats.get("images", 0), "rejected": len(rejects)}
    counts |= {k: v for k, v in stats.items() if k != "images"} | extra
    if counts["given"] != counts["accepted"] + counts["rejected"]:
        raise AssertionError(f"{rejects.source}: counts do not reconcile: {counts}")
    rejects.write(table_path(out, "rejects"))
    write_json(out / "counts.json", counts)
    return counts
