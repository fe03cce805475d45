"""Stage `digest@<dataset>`: content digests of a dataset's folders, for the selections of stages.select.

Output: data/digests/<dataset>.json, one sha256 per folder: `prepared` (data/prepared/<dataset>/), `masks`
(data/masks/<dataset>/) and `features` (data/features/<dataset>/), each over every file's relative path and
content. DVC reruns this stage only when one of the three folders changed, so each dataset is hashed once per
change (as DVC hashes it itself), never on every repro; the selections then only read these small files.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from stages.common import params, paths
from stages.common.cli import DATASET, StageError, run_stage
from stages.common.fingerprint import digest, file_digest
from storage.atomic import write_json

log = logging.getLogger("stages.digest")
# part -> (its folder, the stage that writes it)
PARTS: dict[str, tuple[Callable[[str], Path], str]] = {"prepared": (paths.prepared, "prepare"),
                                                        "masks": (paths.masks, "segment"),
                                                        "features": (paths.features, "features")}


def folder_digest(folder: Path) -> str:
    """sha256 over (relative path, content sha256) of every file under `folder`, in path order."""
    files = sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())
    return digest([(rel, file_digest(p)) for rel, p in files])


def run(dataset: str) -> dict[str, str]:
    if dataset not in params.datasets():
        raise StageError(f"dataset {dataset!r} is not listed in params.yaml `datasets`")
    out = {}
    for part, (folder, stage) in PARTS.items():
        path = folder(dataset)
        if not path.is_dir():
            raise StageError(f"{path} not found: run `dvc repro {stage}@{dataset}` first")
        out[part] = folder_digest(path)
    write_json(paths.dataset_digest(dataset), out)
    log.info("%s: %s", dataset, ", ".join(f"{k} {v[:12]}" for k, v in out.items()))
    return out


def main(argv: list[str] | None = None) -> None:
    run_stage("digest", __doc__, run, argv, DATASET)


if __name__ == "__main__":
    main()
