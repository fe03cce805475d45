"""Headline metrics: a few numbers per stage in git-tracked `metrics/<name>.json` (dvc.yaml `metrics:`), so that
`dvc exp show`, `dvc metrics diff` and every `dvc exp` carry and compare them. Strings, counts, timings and
per-type breakdowns stay in each stage's detail file under data/, except pretraining's seconds per epoch and peak
memory: its ablations compare cost (ASH-Nets Table XII), so those vary from run to run."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage.atomic import write_json


def numbers_only(values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """`values` checked to hold only finite numbers (nested by dataset at most); NaN/inf become None."""
    out: dict[str, Any] = {}
    for key, v in values.items():
        name = f"{where}{key}"
        if isinstance(v, Mapping):
            out[key] = numbers_only(v, f"{name}.")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"headline metric {name!r} is {type(v).__name__}, not a number")
        else:
            out[key] = v if math.isfinite(v) else None
    return out


def write_headline(path: Path, values: Mapping[str, Any]) -> dict[str, Any]:
    flat = numbers_only(values)
    write_json(path, flat)
    return flat
