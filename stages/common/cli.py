"""Shared entry point for stages: argument parsing, logging, and clean failure messages."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from stages.common.params import ParamsError
from stages.common.paths import TASKS
from storage.adapters.base import DatasetError
from storage.maskcodec import MaskCodecError
from storage.shards import ShardError
from storage.tables import TableError

log = logging.getLogger("stages")


class StageError(RuntimeError):
    """A stage cannot run: missing inputs, or inputs that contradict its params."""


# Errors that describe a problem with the user's inputs or params: one clear line, exit 2. Stages that build
# a backbone add models.backbone.BackboneError themselves, so that this module (and `prepare`) never imports torch.
EXPECTED = (ParamsError, StageError, DatasetError, TableError, ShardError, MaskCodecError, FileNotFoundError)


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def set_threads(n: int | None) -> None:
    """CPU intra-op threads; null keeps torch's default (all cores). Parallel workers get 1 thread each:
    on a shared machine thread hand-offs wait for busy cores (README "Interruption, resumption, parallelism")."""
    if n is not None:
        import torch
        torch.set_num_threads(n)


def progress_enabled() -> bool:
    """tqdm bars unless PROGRESS=0 (tests and CI logs stay readable)."""
    return os.environ.get("PROGRESS", "1") != "0"


@dataclass(frozen=True)
class Option:
    """The one required option of a stage command, e.g. `--dataset scenes`."""
    name: str
    help: str
    choices: tuple[str, ...] | None = None
    stage: Callable[[str], str] | None = None   # the DVC stage a value runs; None: `<name>@<value>`


DATASET = Option("dataset", "dataset name from params.yaml `datasets`")
TASK = Option("task", "downstream task", TASKS)


def run_stage(name: str, doc: str | None, fn: Callable[..., object], argv: list[str] | None = None,
              option: Option | None = None, errors: tuple[type[BaseException], ...] = ()) -> None:
    """`python -m stages.<name> [--<option> VALUE]`: runs fn() or fn(VALUE) with logging set up. An expected
    error (EXPECTED or `errors`) logs one line `<DVC stage> failed: <error>` and exits 2; `--help` shows the
    first line of the stage module's docstring `doc`."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=(doc or "").strip().split("\n")[0])
    if option is not None:
        parser.add_argument(f"--{option.name}", required=True, choices=option.choices, help=option.help)
    args = parser.parse_args(argv)
    value = getattr(args, option.name) if option is not None else None
    stage = name if option is None else (option.stage or (lambda v: f"{name}@{v}"))(value)
    setup_logging()
    try:
        fn() if option is None else fn(value)
    except (*EXPECTED, *errors) as e:
        log.error("%s failed: %s", stage, e)
        sys.exit(2)
