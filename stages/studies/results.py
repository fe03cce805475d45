"""One paper table's runs -> its result: per row and column the seeds' values, mean, spread and bootstrap
interval beside the paper's number; per row and column against the reference row, the paired difference and
whether its direction agrees with the paper's. Speed columns also as ratios to the first row."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from stages.common.paths import TASKS
from stages.studies.collect import Run
from stages.studies.plan import row_key
from stages.studies.stats import Summary, summarize, verdict
from stages.studies.tables import Row, Table


def measured(run: Run, metric: str) -> bool:
    """Whether the run's targets brought `metric`'s file up to date: a task's headline file (metrics/<task>.json)
    only when its evaluate stage is a target; otherwise it is whatever the run's commit held."""
    stem = Path(run.row.sources.get(metric, "")).stem
    return stem not in TASKS or f"evaluate@{stem}" in run.experiment.targets


def _seed_values(runs: list[Run], metric: str) -> dict[int, float]:
    return {r.experiment.seed: r.row.metrics[metric] for r in runs
            if isinstance(r.row.metrics.get(metric), (int, float)) and measured(r, metric)}


def _summary(s: Summary | None) -> dict[str, Any] | None:
    return None if s is None else asdict(s)


def _row_result(table: Table, row: Row, runs: list[Run]) -> dict[str, Any]:
    mine = [r for r in runs if r.experiment.key == row_key(row)]
    values = {}
    for col in table.columns:
        seeds = _seed_values(mine, col.metric)
        values[col.label] = {"seeds": seeds, **(_summary(summarize(list(seeds.values()))) or {}),
                             "paper": row.paper.get(col.label)}
    return {"name": row.name, "overrides": list(row.overrides), "note": row.note, "values": values,
            "runs": [{"seed": r.experiment.seed, "experiment": r.row.name, "rev": r.row.rev, "commit": r.commit,
                      "error": r.row.error} for r in sorted(mine, key=lambda r: r.experiment.seed)]}


def _comparison(row: dict[str, Any], ref: dict[str, Any], label: str) -> dict[str, Any]:
    a, b = row["values"][label], ref["values"][label]
    seeds = sorted(set(a["seeds"]) & set(b["seeds"]))
    diffs = [a["seeds"][s] - b["seeds"][s] for s in seeds]
    paper = None if a["paper"] is None or b["paper"] is None else a["paper"] - b["paper"]
    return {"row": row["name"], "reference": ref["name"], "column": label, "seeds": seeds,
            "ours": _summary(summarize(diffs)), "paper": paper, "verdict": verdict(diffs, paper)}


def _ratios(rows: list[dict[str, Any]], label: str) -> None:
    first = rows[0]["values"][label].get("mean")
    for r in rows:
        mean = r["values"][label].get("mean")
        r["values"][label]["ratio_to_first"] = None if not first or mean is None else mean / first


def table_result(table: Table, runs: list[Run]) -> dict[str, Any]:
    rows = [_row_result(table, r, runs) for r in table.rows]
    ref = next(r for r in rows if r["name"] == (table.reference or table.rows[0].name))
    if table.speed:
        for col in table.columns:
            if col.metric.rpartition(":")[2] in SPEED_METRICS:   # "pretrain:seconds_per_epoch"
                _ratios(rows, col.label)
    comparisons = [_comparison(r, ref, c.label) for r in rows if r is not ref for c in table.columns]
    return {"table": table.id, "title": table.title, "note": table.note, "reference": ref["name"],
            "columns": [asdict(c) for c in table.columns], "rows": rows, "comparisons": comparisons}


SPEED_METRICS = ("seconds_per_epoch", "peak_rss_mib", "peak_cuda_mib")
