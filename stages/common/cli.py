"""Shared entry point for stages: argument parsing (`--help`, `--set`), logging, and clean failure messages."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stages.common import stage_help
from stages.common.overrides import overridden
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


SET_HELP = ("set a params.yaml value for this run only, as `dvc exp run -S` takes it (e.g. features.max_nodes=24; "
            "repeatable): params.yaml is not written and DVC does not track the run; `dvc exp run -S KEY=VALUE` "
            "runs a tracked experiment")


class _StageParser(argparse.ArgumentParser):
    """Reads dvc.yaml and params.yaml for the stage's details only when `--help` prints them."""

    def __init__(self, details: Callable[[], str], **kw: Any) -> None:
        super().__init__(formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        self.details = details

    def format_help(self) -> str:
        self.epilog = self.details()
        return super().format_help()


def _arguments(parser: argparse.ArgumentParser, option: Option | None, required: bool) -> argparse.ArgumentParser:
    if option is not None:
        parser.add_argument(f"--{option.name}", required=required, choices=option.choices, help=option.help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    return parser


def run_stage(name: str, doc: str | None, fn: Callable[..., object], argv: list[str] | None = None,
              option: Option | None = None, errors: tuple[type[BaseException], ...] = ()) -> None:
    """`python -m stages.<name> [--<option> VALUE] [--set KEY=VALUE ...]`: runs fn() or fn(VALUE) with logging set
    up and the `--set` overrides applied to this run's params. An expected error (EXPECTED or `errors`, a bad
    `--set` included) logs one line `<DVC stage> failed: <error>` and exits 2. `--help` describes the stage:
    the first paragraph of its module docstring `doc`, then stage_help.details."""
    argv = sys.argv[1:] if argv is None else argv

    def details() -> str:
        given = _arguments(argparse.ArgumentParser(add_help=False), option, False).parse_known_args(argv)[0]
        return stage_help.details(name, option and option.name, option and getattr(given, option.name), given.set)

    parser = _StageParser(details, prog=f"python -m stages.{name}", description=stage_help.description(doc))
    args = _arguments(parser, option, True).parse_args(argv)
    value = getattr(args, option.name) if option is not None else None
    stage = name if option is None else (option.stage or (lambda v: f"{name}@{v}"))(value)
    setup_logging()
    try:
        with overridden(args.set) as values:
            if values:
                log.info("%s: --set %s (this run only: params.yaml unchanged, DVC does not track it)", stage,
                         ", ".join(f"{k}={v!r}" for k, v in values.items()))
            fn() if option is None else fn(value)
    except (*EXPECTED, *errors) as e:
        log.error("%s failed: %s", stage, e)
        sys.exit(2)
