"""Canonical Parquet tables (DESIGN.md section 4): schemas, validated readers and atomic writers.

Every data table ends with an optional `subset` column (string, null by default): the official
finer grouping a row belongs to where a benchmark reports one, e.g. "restval" (COCO Karpathy
train), "fold0".."fold4" (COCO Karpathy 5K test: the 1K folds), "test-dev2015" / "test2015"
(VQAv2 test), "testdev" (GQA), "test1" (NLVR2 test-P), the COCO-QA question type. Rows may leave
it out, and tables written before it existed read back with it null. The images table also has an
optional `sha256` column (the image file's digest, which prepare records), so that images.parquet
changes, and with it every fingerprint that hashes it, when an image's bytes change in place.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.atomic import atomic_path

SPLITS = ("train", "val", "test")
VE_LABELS = ("entailment", "neutral", "contradiction")
ANSWER_TYPES = ("yes/no", "number", "other")
SUBSET = pa.field("subset", pa.string())
SHA256 = pa.field("sha256", pa.string())
OPTIONAL = (SHA256.name, SUBSET.name)   # rows may leave these out; older tables read back with them null

SCHEMAS: dict[str, pa.Schema] = {
    "images": pa.schema([
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("split", pa.string()),
        SHA256,
        SUBSET,
    ]),
    "captions": pa.schema([
        ("caption_id", pa.string()),
        ("image_id", pa.string()),
        ("text", pa.string()),
        ("split", pa.string()),
        SUBSET,
    ]),
    "vqa": pa.schema([
        ("question_id", pa.string()),
        ("image_id", pa.string()),
        ("question", pa.string()),
        ("answers", pa.list_(pa.string())),
        ("answer_type", pa.string()),
        ("split", pa.string()),
        SUBSET,
    ]),
    "ve": pa.schema([
        ("pair_id", pa.string()),
        ("image_id", pa.string()),
        ("hypothesis", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        SUBSET,
    ]),
    "nlvr2": pa.schema([
        ("pair_id", pa.string()),
        ("left_image_id", pa.string()),
        ("right_image_id", pa.string()),
        ("sentence", pa.string()),
        ("label", pa.bool_()),
        ("split", pa.string()),
        SUBSET,
    ]),
    "rejects": pa.schema([
        ("source", pa.string()),
        ("item", pa.string()),
        ("reason", pa.string()),
    ]),
}

TABLES = tuple(SCHEMAS)
# Primary key of each table: ids must be unique within it.
KEYS = {"images": "image_id", "captions": "caption_id", "vqa": "question_id",
        "ve": "pair_id", "nlvr2": "pair_id"}


class TableError(ValueError):
    """A table file or its rows do not match the canonical schema."""


def to_table(name: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a canonical table from dict rows; a missing or mistyped field is a TableError."""
    schema = SCHEMAS[name]
    rows = list(rows)
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for i, row in enumerate(rows):
        extra = set(row) - set(cols)
        if extra:
            raise TableError(f"{name} row {i}: unknown fields {sorted(extra)}")
        for f in schema:
            if f.name not in row and f.name not in OPTIONAL:
                raise TableError(f"{name} row {i}: missing field {f.name!r}")
            cols[f.name].append(row.get(f.name))
    try:
        return pa.Table.from_pydict(cols, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TableError(f"{name}: {e}") from e


def write_table(path: str | os.PathLike, name: str, table: pa.Table | Iterable[Mapping[str, Any]]) -> int:
    """Write a canonical table atomically; return its row count."""
    if not isinstance(table, pa.Table):
        table = to_table(name, table)
    elif not table.schema.equals(SCHEMAS[name]):
        raise TableError(f"{name}: schema {table.schema} differs from the canonical one")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


def read_table(path: str | os.PathLike, name: str) -> pa.Table:
    """Read a canonical table, checking it has the canonical columns and types."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} table not found: {path} (run the stage that writes it)")
    table = pq.read_table(path)
    want = SCHEMAS[name]
    missing = [want.field(n) for n in OPTIONAL if n in want.names and n not in table.schema.names]
    if missing:   # written before the column existed
        for f in missing:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        if set(table.schema.names) == set(want.names):
            table = table.select(want.names)
    if not table.schema.equals(want):
        raise TableError(f"{path}: columns {table.schema.names} do not match the {name} schema {want.names}")
    return table


def table_path(prepared_dir: str | os.PathLike, name: str) -> Path:
    return Path(prepared_dir) / f"{name}.parquet"
