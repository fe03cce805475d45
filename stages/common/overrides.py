"""params.yaml overrides, `KEY=VALUE` with a dotted key as `dvc exp run -S` takes them: written into the file
(`python -m stages.overlay --apply`, the Prefect `stage` flow; comments and layout kept, nothing written unless
the result validates), or applied to one stage run only (a stage command's `--set`)."""
from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from stages.common import params
from stages.common.params import ParamsError, set_key, validate_all
from storage.atomic import write_bytes


def parse_assignment(text: str) -> tuple[str, Any]:
    """`features.max_nodes=24` -> ("features.max_nodes", 24); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override {text!r} is not KEY=VALUE (e.g. features.max_nodes=24)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ParamsError(f"override {text!r}: the value is not valid YAML ({' '.join(str(e).split())})") from None


def write_overrides(params_file: Path, overrides: dict[str, Any]) -> None:
    """Set each dotted key (`datasets` or `section.key[.subkey]`) of `params_file` to its value; nothing is
    written if a key is malformed or the resulting params do not validate."""
    rt = YAML()
    rt.preserve_quotes, rt.width = True, 4096  # keep quotes and long flow mappings as written
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    data = rt.load(params_file.read_text())
    for key, value in overrides.items():
        set_key(data, key, value)
    buf = io.StringIO()
    rt.dump(data, buf)
    validate_all(yaml.safe_load(buf.getvalue()))
    write_bytes(params_file, buf.getvalue().encode())


@contextmanager
def overridden(assignments: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Within the block, params.yaml as read by this process and the workers it starts has `assignments` set;
    the file is not written. Yields the parsed overrides. The sections they touch are validated on entry:
    a malformed assignment, an unknown key or a value the schema refuses raises ParamsError naming it."""
    values = dict(parse_assignment(a) for a in assignments)
    before = os.environ.get(params.SET_ENV)
    if values:
        os.environ[params.SET_ENV] = yaml.safe_dump(values)
    try:
        if values:
            _validate_touched(values, assignments)
        yield values
    finally:
        if before is None:
            os.environ.pop(params.SET_ENV, None)
        else:
            os.environ[params.SET_ENV] = before


def _validate_touched(values: dict[str, Any], assignments: Sequence[str]) -> None:
    """Only the touched sections: like a stage, a --set run never fails on a section it does not read."""
    try:
        data = params.read_yaml()
        for section in dict.fromkeys(key.split(".")[0] for key in values):
            if section == "datasets":
                params.check_datasets(data.get("datasets", []))
            else:
                params.validate(section, data.get(section))
    except ParamsError as e:
        raise ParamsError(f"{e} (with --set {' '.join(assignments)})") from None
