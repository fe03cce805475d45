"""`dvc exp show --json` output -> one row per commit and experiment: headline metrics and params.

The JSON (DVC 3) is a list of revisions: {"rev", "name", "data": {"timestamp", "params": {file: {"data"}},
"metrics": {file: {"data"}}}, "error", "experiments": [{"name", "revs": [revision, ...]}]}. The first
entry is usually the workspace. Metrics come from the headline files (metrics/*.json), flattened to
dotted keys (`scenes.vqa_acc`); a key that two files share is prefixed with its file's name.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MISSING = "–"


class ExpShowError(ValueError):
    """The JSON is not what `dvc exp show --json` writes."""


@dataclass
class Row:
    name: str
    rev: str
    timestamp: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    sources: dict[str, str] = field(default_factory=dict)     # metric key -> the headline file it came from


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


def _error(e: Any) -> str:
    if not e:
        return ""
    return f"{e.get('type', 'error')}: {e.get('msg', '')}" if isinstance(e, dict) else str(e)


def _files(section: Any, what: str, rev: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise ExpShowError(f"revision {rev}: `{what}` is not a mapping of file -> {{data: ...}}")
    return section


def _row(entry: Any, fallback_name: str, headline_dir: str) -> Row:
    if not isinstance(entry, dict) or not isinstance(entry.get("rev"), str):
        raise ExpShowError(f"an entry is not a revision with a `rev` string: {json.dumps(entry)[:120]}")
    rev, data = entry["rev"], entry.get("data") or {}
    if not isinstance(data, dict):
        raise ExpShowError(f"revision {rev}: `data` is not a mapping")
    name = entry.get("name") or (rev if rev == "workspace" else fallback_name or rev[:7])
    row = Row(name, "" if rev == "workspace" else rev[:7], str(data.get("timestamp") or ""),
              error=_error(entry.get("error")))
    for file, d in _files(data.get("params"), "params", rev).items():
        prefix = "" if file == "params.yaml" else f"{file}:"
        row.params.update({prefix + k: json.dumps(v) if not isinstance(v, str) else v
                           for k, v in _flat("", d.get("data")).items()})
        row.error = row.error or _error(d.get("error"))
    per_file = {file: _flat("", d.get("data")) for file, d in _files(data.get("metrics"), "metrics", rev).items()
                if file.startswith(headline_dir)}
    counts: dict[str, int] = {}
    for values in per_file.values():
        for k in values:
            counts[k] = counts.get(k, 0) + 1
    for file, values in per_file.items():
        stem = file[len(headline_dir):].removesuffix(".json")
        keys = {k: (k if counts[k] == 1 else f"{stem}:{k}") for k in values}
        row.metrics.update({keys[k]: v for k, v in values.items()})
        row.sources.update({key: file for key in keys.values()})
    return row


def parse_grouped(doc: Any, headline_dir: str = "metrics/") -> list[tuple[Row, list[Row]]]:
    """Each revision of `dvc exp show --json` output (the workspace, commits) with its experiments' rows."""
    if not isinstance(doc, list):
        raise ExpShowError(f"expected a JSON list of revisions, got {type(doc).__name__}")
    out = []
    for entry in doc:
        base = _row(entry, "", headline_dir)
        exps = entry.get("experiments")
        exps = [] if exps is None else exps
        if not isinstance(exps, list):
            raise ExpShowError(f"revision {entry['rev']}: `experiments` is not a list")
        rows = []
        for exp in exps:
            if not isinstance(exp, dict) or not isinstance(exp.get("revs"), list):
                raise ExpShowError(f"revision {entry['rev']}: an experiment has no `revs` list")
            rows += [_row(r, exp.get("name") or "", headline_dir) for r in exp["revs"]]
        out.append((base, rows))
    if not out:
        raise ExpShowError("no revisions in it (run `dvc exp run` or commit a run first)")
    return out


def parse(doc: Any, headline_dir: str = "metrics/") -> list[Row]:
    """Rows of every revision and experiment in `dvc exp show --json` output, in its order."""
    return [row for base, exps in parse_grouped(doc, headline_dir) for row in (base, *exps)]


def differing_params(rows: list[Row]) -> list[str]:
    """Params whose value is not the same in every row (absent counts as a value)."""
    keys = list(dict.fromkeys(k for r in rows for k in r.params))
    return [k for k in keys if len({r.params.get(k) for r in rows}) > 1]


def _fmt(v: Any) -> str:
    if v is None:
        return MISSING
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table(rows: list[Row]) -> tuple[list[str], list[list[str]], int]:
    """(header, rows, params left out): name, rev, date, the params that differ, every headline metric,
    and an error column where a revision has one."""
    params = differing_params(rows)
    metrics = list(dict.fromkeys(k for r in rows for k in r.metrics))
    errors = any(r.error for r in rows)
    header = ["experiment", "rev", "created", *params, *metrics, *(["error"] if errors else [])]
    body = [[r.name, r.rev, r.timestamp, *(r.params.get(k, MISSING) for k in params),
             *(_fmt(r.metrics.get(k)) for k in metrics), *([r.error] if errors else [])] for r in rows]
    all_params = {k for r in rows for k in r.params}
    return header, body, len(all_params) - len(params)
