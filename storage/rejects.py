"""The `rejects` table: every input a stage could not use, with the reason.

Each stage writes its own `rejects.parquet` beside its outputs (DVC outputs of different
stages may not overlap); `read_all` gathers them into one table so that, per stage,
inputs = accepted + rejected always reconciles. Items and reasons quote untrusted text, so each is
made writable on the way in: unencodable characters (a lone surrogate from a JSON escape) are
escaped, and very long text is cut to MAX_TEXT characters.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.tables import SCHEMAS, write_table

log = logging.getLogger(__name__)
MAX_TEXT = 1000


def writable(text: str) -> str:
    """`text` as valid UTF-8 (unencodable characters escaped), at most MAX_TEXT characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= MAX_TEXT:
        return text
    tail = f"... ({len(text)} characters)"
    return text[: MAX_TEXT - len(tail)] + tail


class Rejects:
    """Collects reject rows for one stage run; `write` stores them atomically."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows: list[dict[str, str]] = []

    def add(self, item: str, reason: str) -> None:
        row = {"source": self.source, "item": writable(str(item)), "reason": writable(str(reason))}
        self.rows.append(row)
        log.debug("reject %s %s: %s", self.source, row["item"], row["reason"])

    def extend(self, other: Rejects) -> None:
        self.rows.extend(other.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def items(self) -> set[str]:
        return {r["item"] for r in self.rows}

    def summary(self) -> str:
        """Reasons by frequency, for the stage log."""
        kinds = Counter(r["reason"].split(":")[0] for r in self.rows)
        return ", ".join(f"{k} x{n}" for k, n in kinds.most_common()) or "none"

    def write(self, path: str | os.PathLike) -> int:
        return write_table(path, "rejects", self.rows)


def read_rejects(path: str | os.PathLike) -> pa.Table:
    return pq.read_table(path, schema=SCHEMAS["rejects"])


def read_all(data_dir: str | os.PathLike = "data") -> pa.Table:
    """Every stage's rejects under `data_dir`, as one table."""
    files = sorted(Path(data_dir).rglob("rejects.parquet"))
    tables = [read_rejects(f) for f in files]
    return pa.concat_tables(tables) if tables else SCHEMAS["rejects"].empty_table()
