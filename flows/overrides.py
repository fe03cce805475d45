"""Parameter overrides for a stage rerun: validated by the stages' schema, then written into
params.yaml in place (comments and layout kept), so `dvc repro` and `dvc status` see them.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from stages.common.params import SECTIONS, ParamsError, validate
from storage.atomic import write_bytes


def parse_assignment(text: str) -> tuple[str, Any]:
    """`features.max_nodes=24` -> ("features.max_nodes", 24); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override {text!r} is not KEY=VALUE (e.g. features.max_nodes=24)")
    return key.strip(), yaml.safe_load(value)


def apply_overrides(params_file: Path, overrides: dict[str, Any]) -> None:
    """Set each dotted key (`section.key[.subkey]`) to its value; nothing is written if any is invalid."""
    rt = YAML()
    rt.preserve_quotes, rt.width = True, 4096  # keep quotes and long flow mappings as written
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    data = rt.load(params_file.read_text())
    for key, value in overrides.items():
        section, *path = key.split(".")
        if section not in SECTIONS or not path:
            raise ParamsError(f"override {key!r}: expected <section>.<key> with a section of "
                              f"{', '.join(SECTIONS)}")
        node = data.setdefault(section, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"override {key!r}: {part} is not a mapping in params.yaml")
        node[path[-1]] = value
    buf = io.StringIO()
    rt.dump(data, buf)
    plain = yaml.safe_load(buf.getvalue())
    for section in {k.split(".")[0] for k in overrides}:
        validate(section, plain.get(section))
    write_bytes(params_file, buf.getvalue().encode())
