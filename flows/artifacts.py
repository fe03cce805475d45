"""A stage's headline metrics (its dvc.yaml `metrics:` files) as a Prefect markdown artifact.

The artifact shows on the flow run's and the task run's Artifacts tab and, under its key
`metrics-<stage>`, on the Artifacts page, one version per run.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact

from stages.common.headline import numbers_only


def artifact_key(stage: str) -> str:
    """The artifact key of `stage` (Prefect allows lowercase letters, digits and dashes): `evaluate@vqa` ->
    `metrics-evaluate-vqa`."""
    return "metrics-" + re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-")


def _cell(value: Any) -> str:
    if value is None:           # numbers_only turned NaN / inf into None
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", r"\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(_cell(c) for c in line) + " |" for line in lines)


def headline_markdown(stage: str, metrics: Mapping[str, Mapping[str, Any]], ran: bool) -> str:
    """`metrics` ({file: its numbers}) as markdown: per file, its flat numbers as metric | value rows and its
    per-dataset numbers as one row per dataset (a blank cell: that dataset has no such metric)."""
    status = "ran" if ran else "was up to date (not rerun)"
    parts = [f"## {stage}: headline metrics", f"The stage {status}."]
    for path, values in metrics.items():
        parts.append(f"`{path}`")
        flat = [(k, v) for k, v in values.items() if not isinstance(v, Mapping)]
        nested = {k: v for k, v in values.items() if isinstance(v, Mapping)}
        if flat:
            parts.append(_table(["metric", "value"], flat))
        if nested:
            columns = list(dict.fromkeys(k for v in nested.values() for k in v))
            rows = [[ds, *(v[c] if c in v else "" for c in columns)] for ds, v in nested.items()]
            parts.append(_table(["dataset", *columns], rows))
    return "\n\n".join(parts) + "\n"


def read_headlines(workspace: Path, paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{path: its numbers} of the headline files; ValueError naming the file if one is missing or malformed."""
    out = {}
    for path in paths:
        try:
            out[path] = numbers_only(json.loads((workspace / path).read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"headline metrics {path} unreadable: {e}") from None
    return out


def publish_headline(workspace: Path, stage: str, paths: Sequence[str], ran: bool,
                     log: logging.Logger | logging.LoggerAdapter) -> UUID | None:
    """Publish the stage's headline metrics files as a markdown artifact; None (and a log line saying why)
    when it has none or one cannot be read: the stage itself succeeded, so that is not a failure."""
    if not paths:
        log.info("%s has no headline metrics (no `metrics:` in dvc.yaml): no artifact", stage)
        return None
    try:
        metrics = read_headlines(workspace, paths)
    except ValueError as e:
        log.warning("no artifact for %s: %s", stage, e)
        return None
    key = artifact_key(stage)
    artifact = create_markdown_artifact(markdown=headline_markdown(stage, metrics, ran), key=key,
                                        description=f"Headline metrics of stage {stage}")
    log.info("headline metrics of %s published as artifact %r", stage, key)
    return artifact
