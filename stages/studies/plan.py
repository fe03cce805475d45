"""Tables x seeds -> the DVC experiments to run: one per distinct (row overrides, seed), however many tables
list the row, each with the budget's overrides and the seed's.

An experiment is identified by its params, never by its name: `collect` finds a row's runs in
`dvc exp show` by the values of every override here, so an experiment run by hand with the same `-S`
values counts, and a study that was interrupted resumes by skipping what is already there.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from stages.studies.tables import Row, Table

SEED_KEYS = ("pretrain.seed", "finetune.seed")
ALL_TASKS = ("evaluate@vqa", "evaluate@ve", "evaluate@nlvr2", "evaluate@itr")   # the report is not needed


@dataclass(frozen=True)
class Budget:
    name: str
    overrides: tuple[str, ...]
    about: str
    targets: tuple[str, ...] = ALL_TASKS      # the stages `dvc exp run` brings up to date (and their upstream)


BUDGETS: dict[str, Budget] = {b.name: b for b in (
    Budget("default", (), "params.yaml as it is: the default run's schedule and all four tasks for every row"),
    Budget("cpu", ("datasets=[scenes]", "pretrain.main.epochs=1", "finetune.vqa.datasets=[scenes]",
                   "finetune.vqa.epochs=1", "finetune.vqa.max_samples=6000", "pretrain.threads=1",
                   "evaluate.threads=1"),
           "scenes only; one main pretraining epoch; VQA (6,000 questions) and retrieval, not VE and NLVR2; one "
           "torch thread per stage (two rows at a time on two cores: two threads on a loaded machine stall at "
           "OpenMP barriers)", ("evaluate@vqa", "evaluate@itr")),
    Budget("itr", (), "params.yaml as it is, retrieval only (finetune@itr, evaluate@itr): the column that told the "
                      "rows apart at the cpu budget (README)", ("evaluate@itr",)),
)}


@dataclass(frozen=True)
class Experiment:
    name: str                       # `dvc exp run -n`: readable, unique per row and seed
    overrides: tuple[str, ...]      # row + budget + seed, "key=value"
    targets: tuple[str, ...]        # `dvc exp run` targets: the budget's
    tables: tuple[str, ...]         # the tables listing its row
    row: str                        # the row's name in the first of them
    key: tuple[str, ...]            # the row's identity (row_key)
    seed: int


def parse_override(text: str) -> tuple[str, object]:
    """"key=value" -> (key, the YAML value DVC's `-S` writes)."""
    key, sep, value = text.partition("=")
    if not sep or not key or not re.fullmatch(r"[A-Za-z0-9_.+]+", key):
        raise ValueError(f"override {text!r} is not key=value")
    return key.lstrip("+"), yaml.safe_load(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "row"


def row_key(row: Row) -> tuple[str, ...]:
    """A row's identity across tables: its overrides, order-free."""
    return tuple(sorted(row.overrides))


def experiments(tables: list[Table], seeds: int, budget: Budget) -> list[Experiment]:
    """One experiment per distinct row and seed, in table order, seed-major (every row of seed 0 first, so a
    study stopped early has whole seeds)."""
    rows: dict[tuple[str, ...], tuple[Row, list[str]]] = {}
    for t in tables:
        for r in t.rows:
            rows.setdefault(row_key(r), (r, []))[1].append(t.id)
    names: set[str] = set()
    out = []
    for seed in range(seeds):
        for key, (row, ids) in rows.items():
            name = _unique(f"{ids[0].split('-')[0]}-{_slug(row.name)}-s{seed}", names)
            seeded = tuple(f"{k}={seed}" for k in SEED_KEYS)
            out.append(Experiment(name, (*budget.overrides, *key, *seeded), budget.targets, tuple(ids), row.name,
                                   key, seed))
    return out


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out
