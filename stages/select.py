"""Stage `select@<consumer>`: the digests (stages.digest) of only the datasets a consumer reads.

DVC cannot template a list param into deps, so the stages that read datasets depend on their selection file
instead of the whole data/prepared and data/features folders: `pretrain_warmup`, `reorder` and `pretrain` on
data/select/pretrain.json (`pretrain.datasets`), `finetune@<task>` and `evaluate@<task>` on data/select/<task>.json
(`finetune.<task>.datasets`), `report` on data/select/report.json (both, with the masks of every task's
datasets: its segment overlays). This stage reruns when any dataset changes, but its output keeps the same
bytes unless a dataset the consumer reads changed, so DVC keeps the consumer cached.

Output: data/select/<consumer>.json: {"consumer": ..., "datasets": {dataset: {part: sha256}}}, keys sorted.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from stages.common import params, paths
from stages.common.cli import Option, StageError, run_stage
from storage.atomic import write_json

log = logging.getLogger("stages.select")
CONSUMER = Option("consumer", "what reads datasets: pretrain, a task, or report", paths.CONSUMERS)
# the params keys that list each consumer's datasets, for error messages
KEYS = {"pretrain": "pretrain.datasets", **{t: f"finetune.{t}.datasets" for t in paths.TASKS},
        "report": "pretrain.datasets or finetune.<task>.datasets"}
CAPTIONED = ("features", "prepared")   # node shards + tables: what pretraining and the tasks read of a dataset
SHOWN = ("masks", "prepared")          # segment overlays + images: what the report shows of every task's dataset


def reads(consumer: str, raw: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Dataset -> the digest parts `consumer` reads of it, under the params.yaml mapping `raw`."""
    if consumer not in paths.CONSUMERS:
        raise StageError(f"unknown consumer {consumer!r}; known: {', '.join(paths.CONSUMERS)}")
    out: dict[str, set[str]] = {}

    def add(datasets: list[str], parts: tuple[str, ...]) -> None:
        for ds in datasets:
            out.setdefault(ds, set()).update(parts)

    if consumer in ("pretrain", "report"):
        add(params.validate("pretrain", raw.get("pretrain")).datasets, CAPTIONED)
    fcfg = params.validate("finetune", raw.get("finetune")) if consumer != "pretrain" else None
    if consumer in paths.TASKS:
        add(getattr(fcfg, consumer).datasets, CAPTIONED)
    if consumer == "report":
        add([ds for task in paths.TASKS for ds in getattr(fcfg, task).datasets], SHOWN)
    return {ds: tuple(sorted(parts)) for ds, parts in sorted(out.items())}


def _digests(dataset: str, parts: tuple[str, ...]) -> dict[str, str]:
    """The `parts` of data/digests/<dataset>.json, or a StageError naming the stage that writes it."""
    path = paths.dataset_digest(dataset)
    if not path.is_file():
        raise StageError(f"{path} not found: run `dvc repro digest@{dataset}` first")
    try:
        digests = json.loads(path.read_text())
        picked = {p: digests[p] for p in parts}
        if not all(isinstance(v, str) for v in picked.values()):
            raise TypeError("a digest is not a string")
    except (ValueError, TypeError, KeyError) as e:
        raise StageError(f"{path} is not what digest@{dataset} writes ({type(e).__name__}: {e}): "
                         f"run `dvc repro -f digest@{dataset}`") from None
    return picked


def run(consumer: str) -> dict[str, dict[str, str]]:
    raw = params.read_yaml()
    wanted = reads(consumer, raw)
    prepared = params.check_datasets(raw.get("datasets", []))
    absent = [ds for ds in wanted if ds not in prepared]
    if absent:
        raise StageError(f"{KEYS[consumer]} lists {absent}, which params.yaml `datasets` does not prepare: "
                         f"add them there")
    selected = {ds: _digests(ds, parts) for ds, parts in wanted.items()}
    write_json(paths.selection(consumer), {"consumer": consumer, "datasets": selected})
    log.info("%s reads %s", consumer, ", ".join(f"{ds} ({'+'.join(parts)})" for ds, parts in wanted.items()))
    return selected


def main(argv: list[str] | None = None) -> None:
    run_stage("select", __doc__, run, argv, CONSUMER)


if __name__ == "__main__":
    main()
