"""Shared helpers of the adapters for the real datasets' official release formats.

- `require`: a missing file or folder is a DatasetError naming the expected path and where the
  official release is published (nothing is ever downloaded).
- `image_folder`: prepare.<dataset>.images, checked for the level the adapter expects (the folder
  of the images, or the parent of the release's subfolders); a wrong level is a DatasetError
  that names the right folder.
- `stream_json` / `stream_json_pairs`: stream the records of a large JSON document with ijson
  (one record in memory at a time). Bytes that are not UTF-8 are replaced by U+FFFD on the way
  in, so the record holding them is rejected on its own ("not UTF-8 text") instead of failing
  the whole file; a file that is not JSON, or nests deeper than MAX_DEPTH levels (the releases
  nest a few), is a DatasetError naming it (storage.adapters.nesting: ijson's memory grows with
  the square of the depth).
- `read_lines`: lines of a text file (JSONL, COCO-QA txt); a non-UTF-8 line becomes None.
  A UTF-8 byte order mark at the start of a file is dropped by both readers.
- `load_json_line`: one JSON-lines record; a repeated key or nesting too deep is a ValueError.
- `Builder`: counts every raw item as `given` and turns it into a row or a reject, so that
  given = accepted + rejected reconciles per table; images are added once per id. Each raw
  record is processed inside `Builder.record`, which turns any exception into that record's
  reject, so no record can stop a stage; its images must resolve inside `image_roots`.
"""
from __future__ import annotations

import codecs
import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy as np

from storage.adapters.base import DatasetError, Prepared, Row
from storage.adapters.nesting import DepthGuard, TooDeep
from storage.containment import real_roots

YES_NO = {"yes", "no"}
NOT_UTF8 = "not UTF-8 text"
READ_SIZE = 1 << 20
MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def require(path: Path, what: str, dataset: str, url: str, param: str, folder: bool = False) -> Path:
    """`path` if it exists; else a DatasetError naming it, the release's URL and the param to set."""
    ok = path.is_dir() if folder else path.is_file()
    if not ok:
        raise DatasetError(f"{dataset}: {what} not found: {path} (the official release is published at {url}; "
                           f"set prepare.{param} to the folder holding it)")
    return path


def require_param(value: str | None, dataset: str, key: str, what: str) -> Path:
    if not value:
        raise DatasetError(f"{dataset} dataset needs prepare.{dataset}.{key} ({what}) in params.yaml")
    return Path(value).expanduser().resolve()


def _holds_images(folder: Path) -> bool:
    with os.scandir(folder) as entries:   # stops at the first image: folders hold 100k+ files
        return any(e.name.lower().endswith(IMAGE_SUFFIXES) for e in entries)


def image_folder(value: str | None, dataset: str, url: str, what: str, *, holds: tuple[str, ...] = (),
                 named: str | None = None) -> Path:
    """prepare.<dataset>.images as a real folder, checked for its level: it must hold one of the release's
    subfolders `holds` (coco's train2014/ ...), or be the folder of the images itself rather than the parent of
    the release's folder `named` (flickr30k-images/ ...). A wrong level is a DatasetError naming the right one."""
    root = require(require_param(value, dataset, "images", what), "images folder", dataset, url,
                   f"{dataset}.images", folder=True)
    param = f"{dataset}: prepare.{dataset}.images = {root}"
    if holds and not any((root / h).is_dir() for h in holds):
        hint = f" (it is one of them: set it to its parent {root.parent})" if root.name in holds else ""
        raise DatasetError(f"{param} holds none of {', '.join(h + '/' for h in holds)}{hint}")
    if named and (root / named).is_dir() and not _holds_images(root):
        raise DatasetError(f"{param} holds {named}/ but no images; set it to {root / named}")
    return root


class _Utf8Repair:
    """A binary reader that passes UTF-8 through, replaces invalid bytes by U+FFFD and refuses deep nesting."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")   # -sig: drops a BOM
        self.guard = DepthGuard(MAX_DEPTH)

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson probes with read(0) whether the stream gives bytes
            return b""
        while True:  # an empty result means end of file, so never return one before it
            chunk = self.raw.read(n if n > 0 else READ_SIZE)
            out = self.decoder.decode(chunk, final=not chunk).encode("utf-8")
            self.guard.feed(out)
            if out or not chunk:
                return out


def _stream(path: Path, parse: Any, prefix: str) -> Iterator[Any]:
    with open(path, "rb") as fh:
        try:
            yield from parse(_Utf8Repair(fh), prefix, use_float=True, buf_size=READ_SIZE)
        except ijson.JSONError as e:
            msg = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            raise DatasetError(f"{path}: not valid JSON: {' '.join(msg.split())}") from None
        except TooDeep as e:
            raise DatasetError(f"{path}: not a release file: JSON {e}") from None


def stream_json(path: Path, prefix: str) -> Iterator[Any]:
    """The items under `prefix` (ijson syntax: "item" = top-level list, "questions.item" ...)."""
    return _stream(path, ijson.items, prefix)


def stream_json_pairs(path: Path) -> Iterator[tuple[str, Any]]:
    """(key, value) pairs of a top-level JSON object, streamed."""
    return _stream(path, ijson.kvitems, "")


def read_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of non-empty lines; text is None when the line is not UTF-8."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                yield lineno, None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json_line(text: str) -> Any:
    """One JSON-lines record; ValueError with the reason when it is not JSON, repeats a key or nests too deep."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def text_problem(record: Any, fields: Iterable[str]) -> str | None:
    """Why a record cannot be used: not an object, a missing field, or undecodable text."""
    if not isinstance(record, dict):
        return "record is not a JSON object"
    for f in fields:
        if f not in record or record[f] is None:
            return f"missing field {f!r}"
        if isinstance(record[f], str) and "\ufffd" in record[f]:
            return NOT_UTF8
    return None


def parse_json_line(text: str | None, fields: Iterable[str]) -> tuple[dict | None, str | None]:
    """One JSON-lines record (None: the line was not UTF-8) -> (record, why it cannot be used or None)."""
    if text is None:
        return None, NOT_UTF8
    try:
        rec = load_json_line(text)
    except ValueError as e:
        return None, str(e)
    return rec, text_problem(rec, fields)


def infer_answer_type(answers: list[str]) -> str:
    norm = {a.strip().lower() for a in answers}
    if norm and norm <= YES_NO:
        return "yes/no"
    if norm and all(a.isdigit() for a in norm):
        return "number"
    return "other"


def carve_val(prep: Prepared, fraction: float, seed: int) -> None:
    """Move a seeded share of the train images, with their train rows, to val (never test rows)."""
    train = sorted(r["image_id"] for r in prep.images if r["split"] == "train")
    n_val = round(len(train) * fraction)
    moved = set(np.random.default_rng(seed).permutation(train)[:n_val].tolist()) if n_val else set()
    for table in prep.tables().values():
        for row in table:
            if row["split"] == "train" and row.get("image_id") in moved:
                row["split"] = "val"


class Builder:
    """Rows and rejects of one adapter run, with given = rows + rejects counted per table.

    Its images must resolve inside `images` or one of the release's subfolders `holds` (real paths)."""

    def __init__(self, images: Path, holds: tuple[str, ...] = ()) -> None:
        self.prep = Prepared(image_roots=real_roots(images, holds))
        self.prep.given = {t: 0 for t in self.prep.tables()}
        self.image_ids: set[str] = set()

    @contextlib.contextmanager
    def record(self, table: str, item: Any) -> Iterator[None]:
        """Process one raw record; any exception undoes what it added and makes it one reject instead."""
        sizes = {t: len(rows) for t, rows in self.prep.tables().items()}
        given, n_rejects = dict(self.prep.given), len(self.prep.rejects)
        try:
            yield
        except Exception as e:  # an input no check foresaw: its record's reject, never the stage's end
            self.image_ids.difference_update(r["image_id"] for r in self.prep.images[sizes["images"]:])
            for t, rows in self.prep.tables().items():
                del rows[sizes[t]:]
            del self.prep.rejects.rows[n_rejects:]
            self.prep.given = given
            self.reject(table, item, f"unusable record: {type(e).__name__}: {e}")

    def row(self, table: str, row: Row) -> None:
        self.prep.given[table] += 1
        getattr(self.prep, table).append(row)

    def reject(self, table: str, item: Any, reason: str) -> None:
        self.prep.given[table] += 1
        self.prep.rejects.add(f"{table}:{item}", reason)

    def reject_record(self, item: Any, children: Any, child_key: str, problem: str) -> None:
        """An unusable image record: it and each caption it holds (`children`) are rejected."""
        self.reject("images", item, problem)
        for j, child in enumerate(children if isinstance(children, list) else []):
            cid = child.get(child_key, f"{item}-{j}") if isinstance(child, dict) else f"{item}-{j}"
            self.reject("captions", cid, f"its image record {item} was rejected: {problem}")

    def image(self, image_id: str, path: Path, split: str, subset: str | None = None) -> None:
        """Add an image once; later references to the same id are not new items."""
        if image_id not in self.image_ids:
            self.image_ids.add(image_id)
            self.row("images", {"image_id": image_id, "path": str(path), "width": 0, "height": 0,
                                "split": split, "subset": subset})

    def done(self, dataset: str, source: Path) -> Prepared:
        if not any(self.prep.given.values()):
            raise DatasetError(f"{dataset}: no records found in {source}")
        return self.prep
