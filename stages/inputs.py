"""Stage `inputs@<dataset>`: a manifest of the files `prepare@<dataset>` reads from outside the project.

The annotation files and image folders that params.yaml `prepare.<dataset>` names (`root`, `annotations`,
`images`, `exclude_coco`) can change without DVC seeing it: DVC cannot template those per-dataset paths
into `prepare`'s deps (treeverse/dvc#5167). This stage runs on every `dvc repro` (`always_changed`) and
writes, per path, the number of files, their total bytes and a digest of every file's relative path,
size and modification time (symlinks followed, loops skipped). `prepare@<dataset>` depends on the
manifest: an edited annotation file or a replaced image reruns it; an unchanged manifest is left as it
is (same bytes, same file), so `prepare` stays cached. Generated datasets (scenes, easy_vqa) name no
path: their manifest is empty. Listing costs about a second per 100,000 files.

Output: data/inputs/<dataset>.json.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from stages.common import params, paths
from stages.common.cli import DATASET, StageError, run_stage
from storage.atomic import write_json

log = logging.getLogger("stages.inputs")
PATH_KEYS = ("root", "annotations", "images", "exclude_coco")   # the path-valued keys of prepare.<dataset>


def named_paths(dataset: str) -> dict[str, str]:
    """The paths `prepare.<dataset>` names, by key (those left null omitted)."""
    section = getattr(params.load("prepare"), dataset, None)
    if section is None:
        raise StageError(f"unknown dataset {dataset!r}; known: {', '.join(params.DATASETS)}")
    return {k: v for k in PATH_KEYS if isinstance(v := getattr(section, k, None), str)}


def _files(top: Path) -> list[Path]:
    """Every regular file under `top`, symlinked folders followed once (a loop is not entered twice)."""
    seen: set[str] = set()
    out: list[Path] = []
    for folder, dirs, files in os.walk(top, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        out += [Path(folder) / f for f in sorted(files)]
    return out


def listing(path: Path) -> dict[str, Any]:
    """Files, bytes and a digest of (relative path, size, mtime_ns) of a file or a folder's files."""
    if not path.exists():
        return {"missing": True}
    digest, n, total = hashlib.sha256(), 0, 0
    for f in [path] if path.is_file() else _files(path):
        rel = f.name if f == path else str(f.relative_to(path))
        try:
            st = f.stat()
        except OSError as e:        # a broken link or an unreadable entry: in the digest with its reason
            digest.update(f"{rel}\0{e.strerror}\n".encode(errors="surrogateescape"))
            continue
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
        n, total = n + 1, total + st.st_size
    return {"files": n, "bytes": total, "digest": digest.hexdigest()}


def run(dataset: str) -> dict[str, Any]:
    if dataset not in params.datasets():
        raise StageError(f"dataset {dataset!r} is not listed in params.yaml `datasets`")
    manifest = {"dataset": dataset,
                "paths": {k: {"path": v, **listing(Path(v))} for k, v in named_paths(dataset).items()}}
    target = paths.inputs_manifest(dataset)
    if target.is_file() and json.loads(target.read_text()) == manifest:
        log.info("inputs@%s: unchanged", dataset)
        return manifest
    write_json(target, manifest)
    for key, entry in manifest["paths"].items():
        log.info("inputs@%s: %s %s: %s", dataset, key, entry["path"],
                 "missing" if entry.get("missing") else f"{entry['files']} files, {entry['bytes']} bytes")
    return manifest


def main(argv: list[str] | None = None) -> None:
    run_stage("inputs", __doc__, run, argv, DATASET)


if __name__ == "__main__":
    main()
