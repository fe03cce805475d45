"""Fingerprints that decide whether finished work can be reused: of values, files, and the code a
stage really runs (its first-party import closure, read from the source, never a hand-kept list)."""
from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("flows", "stages", "models", "storage")


def digest(*parts: Any) -> str:
    """sha256 of JSON-encoded values (dicts by sorted keys; other objects by str)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _module_file(name: str) -> Path | None:
    """The source file of a first-party module or package, or None when `name` is not one."""
    if name.split(".")[0] not in FIRST_PARTY:
        return None
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(path: Path) -> set[str]:
    """Module names a source file imports (`from a.b import c` yields a.b and a.b.c: c may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@functools.cache
def code_files(module: str) -> tuple[Path, ...]:
    """The first-party source files `module` runs: itself, the packages on its path, and everything
    they import, transitively (sorted, relative to the repository root)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):      # a package's __init__ runs before its modules
            path = _module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(_imported(path))
    return tuple(sorted(p.relative_to(REPO) for p in seen))


def code_digest(module: str) -> str:
    """Digest of every source file `module` runs: a change to any of them never reuses old work."""
    return digest([(str(p), file_digest(REPO / p)) for p in code_files(module)])
