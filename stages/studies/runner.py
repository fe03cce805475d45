"""Running a study's experiments with DVC: queued (`dvc exp run --queue`, then the queue's own workers) or
one after another in the workspace. Either way each is a named `dvc exp` a user can inspect, apply or rerun.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from stages.common.cli import StageError
from stages.studies.plan import Experiment

log = logging.getLogger("stages.study")
POLL_S = 10.0
ACTIVE = ("Queued", "Running")      # `dvc queue status` states of work not yet done


def dvc(*args: str, cwd: Path | None = None, capture: bool = True) -> str:
    """Run `python -m dvc ARGS` (the interpreter's own DVC); its output, or a StageError with its last line."""
    cmd = [sys.executable, "-m", "dvc", *args]
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=capture, text=True)
    except OSError as e:
        raise StageError(f"cannot run dvc ({e})") from None
    if done.returncode != 0:
        tail = ((done.stderr or "") + (done.stdout or "")).strip().splitlines() if capture else []
        raise StageError(f"`dvc {' '.join(args[:3])} ...` failed: {tail[-1] if tail else f'exit {done.returncode}'}")
    return done.stdout or ""


def exp_run_args(exp: Experiment) -> list[str]:
    """`dvc exp run` arguments of one experiment (without --queue)."""
    sets = [a for o in exp.overrides for a in ("-S", o)]
    return ["exp", "run", "-n", exp.name, *sets, *exp.targets]


def run_queued(exps: list[Experiment], jobs: int, cwd: Path | None = None) -> None:
    """Queue every experiment, start `jobs` queue workers, wait until the queue has nothing left to do."""
    for exp in exps:
        dvc(*exp_run_args(exp)[:2], "--queue", *exp_run_args(exp)[2:], cwd=cwd)
        log.info("queued %s", exp.name)
    dvc("queue", "start", "-j", str(jobs), cwd=cwd)
    log.info("%d experiment(s) queued, %d worker(s) started: `dvc queue status` / `dvc queue logs NAME` to follow",
             len(exps), jobs)
    while (active := _active(cwd)):
        log.info("queue: %d queued or running", active)
        time.sleep(POLL_S)


def _active(cwd: Path | None) -> int:
    out = dvc("queue", "status", cwd=cwd)
    return sum(1 for line in out.splitlines() if any(f" {s} " in f" {line} " for s in ACTIVE))


def run_in_workspace(exps: list[Experiment], params: Path) -> None:
    """One experiment after another in the workspace; params.yaml is restored after each (DVC leaves the
    last experiment's values in it)."""
    original = params.read_bytes()
    try:
        for i, exp in enumerate(exps, 1):
            log.info("[%d/%d] %s", i, len(exps), exp.name)
            try:
                dvc(*exp_run_args(exp), capture=False)
            except StageError as e:
                log.error("%s failed (%s); `dvc exp show` lists it, the study goes on", exp.name, e)
            params.write_bytes(original)
    finally:
        params.write_bytes(original)
