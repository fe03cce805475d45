"""The one writer of params.yaml overrides (`python -m stages.overlay --apply`, the Prefect `stage` flow):
dotted keys set in place, comments and layout kept, nothing written unless the result validates."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from stages.common.params import SECTIONS, ParamsError, validate_all
from storage.atomic import write_bytes


def parse_assignment(text: str) -> tuple[str, Any]:
    """`features.max_nodes=24` -> ("features.max_nodes", 24); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override {text!r} is not KEY=VALUE (e.g. features.max_nodes=24)")
    return key.strip(), yaml.safe_load(value)


def write_overrides(params_file: Path, overrides: dict[str, Any]) -> None:
    """Set each dotted key (`datasets` or `section.key[.subkey]`) of `params_file` to its value; nothing is
    written if a key is malformed or the resulting params do not validate."""
    rt = YAML()
    rt.preserve_quotes, rt.width = True, 4096  # keep quotes and long flow mappings as written
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    data = rt.load(params_file.read_text())
    for key, value in overrides.items():
        section, *path = key.split(".")
        if key == "datasets":
            data[key] = value
            continue
        if section not in SECTIONS or not path:
            raise ParamsError(f"override {key!r}: expected datasets or <section>.<key> with a section of "
                              f"{', '.join(SECTIONS)}")
        node = data.setdefault(section, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"override {key!r}: {part} is not a mapping in params.yaml")
        node[path[-1]] = value
    buf = io.StringIO()
    rt.dump(data, buf)
    validate_all(yaml.safe_load(buf.getvalue()))
    write_bytes(params_file, buf.getvalue().encode())
