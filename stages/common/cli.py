"""Shared entry point for stages: argument parsing, logging, and clean failure messages."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from models.backbone import BackboneError
from stages.common.params import ParamsError
from storage.adapters.base import DatasetError
from storage.maskcodec import MaskCodecError
from storage.shards import ShardError
from storage.tables import TableError

log = logging.getLogger("stages")


class StageError(RuntimeError):
    """A stage cannot run: missing inputs, or inputs that contradict its params."""


# Errors that describe a problem with the user's inputs or params: one clear line, exit 2.
EXPECTED = (ParamsError, StageError, DatasetError, TableError, ShardError, MaskCodecError, BackboneError,
            FileNotFoundError)


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def set_threads(n: int | None) -> None:
    """CPU intra-op threads; null keeps torch's default (all cores). Tiny-size steps on an idle
    2-core machine: 2 threads 1.4x faster than 1; but 8-12x slower than 1 when another process
    keeps a core busy (thread hand-offs wait for it), so parallel workers get 1 thread each."""
    if n is not None:
        import torch
        torch.set_num_threads(n)


def progress_enabled() -> bool:
    """tqdm bars unless PROGRESS=0 (tests and CI logs stay readable)."""
    return os.environ.get("PROGRESS", "1") != "0"


def run_dataset_stage(name: str, fn: Callable[[str], None], argv: list[str] | None = None) -> None:
    """`python -m stages.<name> --dataset D`: run fn(D); expected errors exit 2 with one clear line."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}")
    parser.add_argument("--dataset", required=True, help="dataset name from params.yaml `datasets`")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        fn(args.dataset)
    except EXPECTED as e:
        log.error("%s failed: %s", name, e)
        sys.exit(2)


def run_task_stage(name: str, fn: Callable[[str], object], tasks: tuple[str, ...],
                   errors: tuple[type[BaseException], ...] = (), argv: list[str] | None = None) -> None:
    """`python -m stages.<name> --task T`: run fn(T); expected errors (and `errors`) exit 2 with one line."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}")
    parser.add_argument("--task", choices=tasks, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        fn(args.task)
    except (*EXPECTED, *errors) as e:
        log.error("%s@%s failed: %s", name, args.task, e)
        sys.exit(2)
