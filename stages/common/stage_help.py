"""What `python -m stages.<name> --help` says about a stage, from facts that exist elsewhere: the module
docstring's first paragraph, the stage's entry in dvc.yaml (inputs, code, outputs, params) and the values
its params have in params.yaml (with this command's `--set` applied)."""
from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stages.common import params
from stages.common.overrides import overridden
from stages.common.params import ParamsError

DVC_FILE = Path("dvc.yaml")
VAR = re.compile(r"\$\{\s*([\w.]+)\s*\}")   # DVC's `${name}` interpolation
WIDTH = 100


def description(doc: str | None) -> str:
    """The first paragraph of a stage module's docstring, wrapped."""
    first = (doc or "").strip().split("\n\n")[0]
    return textwrap.fill(" ".join(first.split()), WIDTH)


@dataclass(frozen=True)
class DvcStage:
    """One dvc.yaml stage this command runs, its `${...}` resolved (`<dataset>` where the value is not given)."""
    name: str
    deps: list[str]
    outs: list[str]
    params: list[str]
    items: list[Any] | None       # a foreach stage's items
    value_keys: list[str]         # params keys whose values to show: every item's, when no item is given


def details(module: str, option: str | None, value: str | None, assignments: Sequence[str]) -> str:
    """The epilog of `python -m stages.<module> --help`: its DVC stage(s) and their params' values."""
    try:
        with overridden(assignments):
            raw: dict[str, Any] | None = params.read_yaml()
        problem = None
    except ParamsError as e:
        raw, problem = None, str(e).split("\n")[0]
    try:
        dvc = yaml.safe_load(DVC_FILE.read_text())
        stages = dvc_stages(dvc["stages"], module, option, value, raw or {})
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        why = " ".join(f"{type(e).__name__}: {e}".split())
        return f"{DVC_FILE} is not readable here ({why}): inputs, outputs and params not listed."
    if not stages:
        command = f"python -m stages.{module}" + (f" --{option} {value}" if value else "")
        return f"{DVC_FILE} has no stage whose cmd is `{command}`"
    blocks = [_describe(s, value) for s in stages]
    keys = list(dict.fromkeys(k for s in stages for k in s.value_keys))
    blocks.append(f"params.yaml cannot be read: {problem}" if raw is None else _values(raw, keys, bool(assignments)))
    return "\n\n".join(blocks)


def dvc_stages(entries: dict[str, Any], module: str, option: str | None, value: str | None,
               raw: dict[str, Any]) -> list[DvcStage]:
    """The dvc.yaml stages whose cmd is `python -m stages.<module>` (with `--<option> <value>` when given)."""
    found = []
    for key, entry in entries.items():
        body = entry.get("do", entry)
        cmd = shlex.split(str(body.get("cmd", "")))
        if cmd[1:3] != ["-m", f"stages.{module}"]:
            continue
        if "foreach" in entry:
            items = _resolve(entry["foreach"], None, raw)
            item = value if value is not None else f"<{option or 'item'}>"
            each = items if value is None and isinstance(items, list) else [item]
            found.append(_stage(f"{key}@{item}", body, item, raw, items, each))
        elif value is None or _flag(cmd, option) == value:
            found.append(_stage(key, body, None, raw, None, [None]))
    return found


def _stage(name: str, body: dict[str, Any], item: Any, raw: dict[str, Any], items: Any,
           each: list[Any]) -> DvcStage:
    def paths(entries: list[Any] | None, it: Any) -> list[str]:
        return [str(next(iter(e)) if isinstance(e, dict) else e) for e in _resolve(entries or [], it, raw)]

    value_keys = [k for it in each for k in paths(body.get("params"), it)]
    return DvcStage(name, paths(body.get("deps"), item), paths(body.get("outs"), item) +
                    paths(body.get("metrics"), item), paths(body.get("params"), item),
                    items if isinstance(items, list) else None, value_keys)


def _flag(cmd: list[str], option: str | None) -> str | None:
    flag = f"--{option}"
    return cmd[cmd.index(flag) + 1] if option and flag in cmd[:-1] else None


def _resolve(obj: Any, item: Any, raw: dict[str, Any]) -> Any:
    """`obj` with `${item}` and `${<params key>}` substituted as DVC does; an unknown name is left as written."""
    if isinstance(obj, list):
        return [_resolve(x, item, raw) for x in obj]
    if isinstance(obj, dict):
        return {_resolve(k, item, raw): _resolve(v, item, raw) for k, v in obj.items()}
    if not isinstance(obj, str):
        return obj
    whole = VAR.fullmatch(obj)
    if whole:                                  # `foreach: ${datasets}` is the list itself
        return _lookup(whole.group(1), item, raw, whole.group(0))
    return VAR.sub(lambda m: str(_lookup(m.group(1), item, raw, m.group(0))), obj)


def _lookup(name: str, item: Any, raw: dict[str, Any], written: str) -> Any:
    if name == "item":
        return written if item is None else item
    node: Any = raw
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return written
        node = node[part]
    return node


def _is_code(path: str) -> bool:
    return path.endswith(".py") or (Path(path) / "__init__.py").is_file()


def _describe(stage: DvcStage, value: str | None) -> str:
    head = f"DVC stage {stage.name} (dvc.yaml)"
    if stage.items is not None:
        head += f", one per item of {', '.join(map(str, stage.items))}"
        if value is not None and value not in stage.items:
            head += f" ({value} is not one: DVC does not run it)"
    rows = [("inputs", [d for d in stage.deps if not _is_code(d)]), ("code", [d for d in stage.deps if _is_code(d)]),
            ("outputs", stage.outs), ("params", stage.params)]
    lines = [textwrap.fill(", ".join(paths) or "-", WIDTH, initial_indent=f"  {label + ':':<9}",
                           subsequent_indent=" " * 11, break_on_hyphens=False) for label, paths in rows]
    return "\n".join([head + ":", *lines])


def _values(raw: dict[str, Any], keys: list[str], with_set: bool) -> str:
    """Each params key's value as the stage would see it: schema defaults filled in, `--set` applied."""
    lines = ["params values" + (" (params.yaml with --set)" if with_set else " (params.yaml)") + ":"]
    for key in keys:
        try:
            rendered = _render(key, _value(raw, key))
        except ParamsError as e:
            rendered = [f"{key}: cannot be read ({str(e).split(chr(10))[0]})"]
        except (KeyError, TypeError):
            rendered = [f"{key}: not in params.yaml"]
        lines += ["  " + line for line in rendered]
    return "\n".join(lines)


def _render(key: Any, value: Any, depth: int = 0) -> list[str]:
    """YAML lines in params.yaml's style: a mapping of plain values inside a section on one line if it fits."""
    flow = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).removesuffix("\n...\n").strip()
    plain = not isinstance(value, dict) or (depth > 0 and not any(isinstance(v, dict) for v in value.values()))
    if plain and 2 * depth + len(f"{key}: {flow}") <= WIDTH:
        return [f"{key}: {flow}"]
    if not isinstance(value, dict):
        return [f"{key}: {flow}"]
    return [f"{key}:", *("  " + line for k, v in value.items() for line in _render(k, v, depth + 1))]


def _value(raw: dict[str, Any], key: str) -> Any:
    section, *path = key.split(".")
    node = raw.get("datasets") if section == "datasets" else params.validate(section, raw.get(section)).model_dump()
    for part in path:
        node = node[part]
    return node
