"""Helpers of the adapter tests: tiny images and files in a dataset's official layout, and a prepare run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stages import prepare
from storage.tables import read_table, table_path

BAD = "@@NOT-UTF8@@"   # write_json turns this marker into an invalid UTF-8 byte


def image(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(obj).encode().replace(BAD.encode(), b"caf\xe9"))
    return path


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Objects are dumped; str lines are written as they are (malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path.write_bytes(text.encode().replace(BAD.encode(), b"caf\xe9"))
    return path


def run(workspace: Any, dataset: str, section: dict[str, Any]) -> tuple[dict, dict[str, list[dict]], dict[str, str]]:
    """Prepare `dataset` from params `section`: (counts, accepted rows per table, reject reason per item)."""
    workspace({"datasets": [dataset], "prepare": {dataset: section}})
    counts = prepare.run(dataset)
    out = Path("data/prepared") / dataset
    tables = {name: read_table(table_path(out, name), name).to_pylist()
              for name in ("images", "captions", "vqa", "ve", "nlvr2")}
    rejects = read_table(table_path(out, "rejects"), "rejects").to_pylist()
    reasons: dict[str, str] = {}
    for r in rejects:
        reasons[r["item"]] = "; ".join(filter(None, (reasons.get(r["item"]), r["reason"])))
    for name, c in counts.items():
        assert c["given"] == c["accepted"] + c["rejected"], (name, c)
        assert c["accepted"] == len(tables.get(name, [])) or name not in tables
    assert sum(c["rejected"] for c in counts.values()) == len(rejects)
    return counts, tables, reasons
