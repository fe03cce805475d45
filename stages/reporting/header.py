"""The report's header: which code (git commit, uncommitted changes), when, and with which parameters.

The parameters are params.yaml's sections as validated (defaults filled in), less what the run did not
read: `prepare` only for the datasets listed in `datasets`, `segment` only for its backend (and the
segmenter a `box` backend takes its boxes from), no `flows` (no stage reads it).
"""
from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stages.common import params

# Written by the run itself, so they differ from the commit after any fresh `dvc repro`: not "dirty".
RUN_OUTPUTS = ("dvc.lock", "metrics/")
SHOWN_CHANGES = 8


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None   # unstripped: porcelain lines start with a space


def git_state(root: Path) -> str:
    """'<sha> (<commit date>)' plus the uncommitted changes, or why there is no commit to name."""
    sha = (_git(root, "rev-parse", "HEAD") or "").strip()
    if not sha:
        return "(not a git checkout)"
    when = (_git(root, "show", "-s", "--format=%cI", "HEAD") or "?").strip()
    status = _git(root, "status", "--porcelain", "--untracked-files=normal") or ""
    changed = [line[3:] for line in status.splitlines() if not line[3:].startswith(RUN_OUTPUTS)]
    if not changed:
        return f"{sha} ({when}), clean tree"
    shown = ", ".join(changed[:SHOWN_CHANGES]) + (f" and {len(changed) - SHOWN_CHANGES} more"
                                                  if len(changed) > SHOWN_CHANGES else "")
    return f"{sha} ({when}), DIRTY: uncommitted changes to {shown}"


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return [kv for k, v in value.items() for kv in _flat(f"{prefix}.{k}", v)]
    return [(prefix, value if isinstance(value, str) else json.dumps(value))]   # null, true: as YAML spells them


def used_params(raw: dict[str, Any]) -> dict[str, Any]:
    """section -> its validated values, less the parts of them this run did not read."""
    datasets = params.check_datasets(raw.get("datasets", []))
    out: dict[str, Any] = {"datasets": datasets}
    for section in params.SECTIONS:
        if section == "flows":
            continue
        values = params.validate(section, raw.get(section)).model_dump()
        if section == "prepare":
            values = {k: v for k, v in values.items() if not isinstance(v, dict) or k in datasets}
        if section == "segment":
            keep = {values["backend"]} | ({values["box"]["source"], "box"} if values["backend"] == "box" else set())
            values = {k: v for k, v in values.items() if not isinstance(v, dict) or k in keep}
        out[section] = values
    return out


def param_rows(raw: dict[str, Any]) -> list[list[str]]:
    """[section, "key=value; ..."] rows of the used params (keys dotted below the section)."""
    return [[section, "; ".join(f"{k.removeprefix(section + '.')}={v}" if k != section else v
                                for k, v in _flat(section, values))]
            for section, values in used_params(raw).items()]


def header_blocks(root: Path, raw: dict[str, Any], now: datetime | None = None) -> list[tuple[Any, ...]]:
    """The lines under the report's title: commit, date, parameters (a folded table)."""
    now = now or datetime.now(UTC)
    return [("p", f"commit: {git_state(root)}"),
            ("p", f"generated: {now.strftime('%Y-%m-%d %H:%M:%S UTC')}"),
            ("details", "parameters of this run (params.yaml as validated: defaults filled in; the parts no stage "
                        "read left out)", ["section", "values"], param_rows(raw))]
