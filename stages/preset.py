"""Parameter presets: a YAML file of overrides of params.yaml (e.g. params-paper.yaml).

    eval dvc exp run $(python -m stages.preset params-paper.yaml)   # run it as a DVC experiment
    python -m stages.preset params-paper.yaml --apply               # write it into params.yaml

The first prints one `-S key=value` flag per overridden value (shell-quoted); the second merges
them into params.yaml in place with DVC's own override code, which keeps the file's comments.
Before either, every section of params.yaml with the overrides merged in is validated against
the schema (stages/common/params.py), and every overridden key must already exist in params.yaml.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from stages.common.params import DATASETS, PARAMS_FILE, SECTIONS, ParamsError, read_yaml, validate

PLAIN = re.compile(r"^[A-Za-z0-9_./~-]+$")


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"preset {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"preset {path} must be a mapping of params.yaml sections")
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
    raise ParamsError(f"preset value {v!r}: only scalars and lists can be set")


def overrides(preset: dict[str, Any], base: dict[str, Any], prefix: str = "") -> list[str]:
    """`key=value` for each leaf of `preset`; a mapping in both files is descended into."""
    out = []
    for key, value in preset.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ParamsError(f"preset key {name} is not in params.yaml")
        if isinstance(value, dict) and isinstance(base[key], dict):
            out += overrides(value, base[key], f"{name}.")
        else:
            out.append(f"{name}={_value(value)}")
    return out


def merged(preset: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in preset.items():
        out[key] = merged(value, base[key]) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def check(preset_path: Path, params_path: Path = PARAMS_FILE) -> list[str]:
    """Validate params.yaml + preset section by section; return the overrides."""
    base = read_yaml(params_path)
    preset = load(preset_path)
    flags = overrides(preset, base)
    full = merged(preset, base)
    for section in SECTIONS:
        validate(section, full.get(section))
    unknown = [d for d in full.get("datasets", []) if d not in DATASETS]
    if unknown:
        raise ParamsError(f"datasets: unknown {unknown}; allowed: {list(DATASETS)}")
    return flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.preset", description=__doc__.split("\n")[0])
    parser.add_argument("preset", type=Path, help="YAML file of overrides, e.g. params-paper.yaml")
    parser.add_argument("--apply", action="store_true", help="write the overrides into params.yaml")
    args = parser.parse_args(argv)
    try:
        flags = check(args.preset)
    except ParamsError as e:
        sys.exit(f"{args.preset}: {e}")
    if args.apply:
        from dvc.utils.hydra import apply_overrides
        apply_overrides(PARAMS_FILE, flags)
        print(f"params.yaml: {len(flags)} values set from {args.preset}")
    else:
        print(" ".join(f"-S {shlex.quote(f)}" for f in flags))


if __name__ == "__main__":
    main()
