"""The papers' ablation tables as data: each row a set of `dvc exp run -S` overrides, each column one of our
headline metrics (metrics/<task>.json, keyed by dataset) beside the paper's number for it.

Our runs are CPU stand-ins (the embedded `scenes` data for VQAv2 / SNLI-VE / NLVR2 / COCO), so only the
directions of the differences between rows are comparable with the papers, never the values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Column:
    label: str                      # the paper's column heading, e.g. "VQAv2 test-dev"
    metric: str                     # a headline key of `dvc exp show` as stages.reporting.experiments flattens it,
                                    # e.g. "scenes.vqa_acc", "scenes.t2i_r1", "pretrain:itm_acc"
                                    # (a key two headline files share is prefixed with its file's name)
    better: Direction = "higher"


@dataclass(frozen=True)
class Row:
    name: str                       # the paper's row label, e.g. "GAT+SNN"
    overrides: tuple[str, ...]      # `dvc exp run -S` values, "key=value" (YAML values), e.g. "model.preset=zero_r"
    paper: dict[str, float | None] = field(default_factory=dict)   # column label -> the paper's number (None: "-")
    note: str = ""                  # how the row maps onto our knobs where it is not literal


@dataclass(frozen=True)
class Table:
    id: str                         # "gshn-table5"
    title: str                      # the paper's caption
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    speed: bool = False             # a speed table: wall time per epoch and peak memory per row as well
    note: str = ""
    reference: str = ""             # the name of the row every other row is compared with; "" = the first row

    def __post_init__(self) -> None:
        if not self.reference and self.rows:
            object.__setattr__(self, "reference", self.rows[0].name)   # frozen: the default is filled in once
