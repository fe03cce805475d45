"""Params overlays: a YAML file of overrides laid over params.yaml (e.g. params-paper.yaml, the papers' setup).

    eval dvc exp run $(python -m stages.overlay params-paper.yaml)   # run it as a DVC experiment
    python -m stages.overlay params-paper.yaml --apply               # write it into params.yaml

The first prints one `-S key=value` flag per overridden value (shell-quoted); the second writes them
into params.yaml in place (stages.common.overrides: comments kept). Before either, params.yaml with
the overlay merged in is validated against the schema (stages/common/params.py), and every key the
overlay sets must already exist in params.yaml.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from stages.common.overrides import write_overrides
from stages.common.params import PARAMS_FILE, ParamsError, read_yaml, validate_all

PLAIN = re.compile(r"^[A-Za-z0-9_./~-]+$")


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"overlay {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"overlay {path} must be a mapping of params.yaml sections")
    return data


def _value(v: Any) -> str:
    """A value in Hydra's override grammar (what `dvc exp run -S` parses)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return v if PLAIN.match(v) and v not in ("null", "true", "false") else "'" + v.replace("'", "\\'") + "'"
    raise ParamsError(f"overlay value {v!r}: only scalars and lists can be set")


def leaves(overlay: dict[str, Any], base: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for each leaf of `overlay`; a mapping in both files is descended into."""
    out: dict[str, Any] = {}
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ParamsError(f"overlay key {name} is not in params.yaml")
        if isinstance(value, dict) and isinstance(base[key], dict):
            out |= leaves(value, base[key], f"{name}.")
        else:
            out[name] = value
    return out


def merged(overlay: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merged(value, base[key]) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def check(overlay_path: Path, params_path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Validate params.yaml + overlay; return the overlay's dotted keys and values."""
    base = read_yaml(params_path)
    overlay = load(overlay_path)
    values = leaves(overlay, base)
    validate_all(merged(overlay, base))
    return values


def flags(values: dict[str, Any]) -> list[str]:
    """`key=value` overrides in the grammar of `dvc exp run -S`."""
    return [f"{k}={_value(v)}" for k, v in values.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.overlay", description=__doc__.split("\n")[0])
    parser.add_argument("overlay", type=Path, help="YAML file of overrides, e.g. params-paper.yaml")
    parser.add_argument("--apply", action="store_true", help="write the overrides into params.yaml")
    args = parser.parse_args(argv)
    try:
        values = check(args.overlay)
        overrides = flags(values)       # refused unless every value can be a `-S` flag too
        if args.apply:
            write_overrides(PARAMS_FILE, values)
    except ParamsError as e:
        sys.exit(f"{args.overlay}: {e}")
    if args.apply:
        print(f"params.yaml: {len(values)} values set from {args.overlay}")
    else:
        print(" ".join(f"-S {shlex.quote(f)}" for f in overrides))


if __name__ == "__main__":
    main()
