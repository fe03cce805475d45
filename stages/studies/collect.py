"""`dvc exp show --json` -> each planned experiment's run: the commit or experiment whose params equal its
commit's params.yaml with the experiment's overrides applied (every other param equal too, so a run with an
extra `-S` change never counts for a row).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stages.reporting.experiments import Row, parse_grouped
from stages.studies.plan import Experiment, parse_override


@dataclass(frozen=True)
class Run:
    experiment: Experiment
    row: Row                        # the matching revision: name, rev, params, metrics, error
    commit: str                     # the commit it ran on


def _value(v: Any) -> str:
    """A param value as stages.reporting.experiments flattens it."""
    return v if isinstance(v, str) else json.dumps(v)


def expected_params(base: dict[str, str], overrides: tuple[str, ...]) -> dict[str, str]:
    """`base` (flattened params.yaml) with the overrides applied; a list or mapping override replaces the
    flattened keys under it, as DVC's `-S` replaces the value."""
    out = dict(base)
    for text in overrides:
        key, value = parse_override(text)
        for k in [k for k in out if k.startswith(f"{key}.")]:
            del out[k]
        if isinstance(value, dict):
            raise ValueError(f"override {text!r}: a mapping value; set its keys one by one")
        out[key] = _value(value)
    return out


def match(doc: Any, planned: list[Experiment]) -> tuple[list[Run], list[Experiment]]:
    """Runs found for the planned experiments (the first match each: an experiment before a commit's own
    run, a finished one before a failed one), and the experiments with none. The workspace row is left out:
    it may not be reproduced."""
    revisions = [(row, base) for base, exps in parse_grouped(doc) if base.name != "workspace"
                 for row in (*exps, base)]
    found: list[Run] = []
    missing = []
    for exp in planned:
        hits = [(r, b) for r, b in revisions if r.params == expected_params(b.params, exp.overrides)]
        hits.sort(key=lambda rb: bool(rb[0].error))            # a failed attempt only when nothing else ran
        hit = hits[0] if hits else None
        if hit is None:
            missing.append(exp)
        else:
            found.append(Run(exp, hit[0], hit[1].rev))
    return found, missing
