"""The one task: `dvc repro -s <stage>` in a workspace, its output streamed to the run's log.

DVC decides whether the stage is out of date and caches its outputs; the task returns the
stage's output paths, never the data, and publishes its headline metrics as an artifact.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from flows.artifacts import publish_headline


class StageFailed(RuntimeError):
    """`dvc repro` of a stage exited with an error."""


@dataclass(frozen=True)
class StageRun:
    stage: str
    ran: bool                 # False: DVC found it up to date and skipped it
    outs: tuple[str, ...]     # absolute paths of its outputs


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run's logger (shown in the UI); a plain logger when called outside a run (`.fn`)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("flows")


def dvc_env() -> dict[str, str]:
    """This interpreter's bin first on PATH, so the stages' `python -m ...` runs in the same venv."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return os.environ | {"PATH": path, "PROGRESS": os.environ.get("PROGRESS", "0"), "DVC_NO_ANALYTICS": "1"}


@task(name="dvc repro", task_run_name="{stage}", cache_policy=NO_CACHE, persist_result=False)
def repro_stage(workspace: str, stage: str, outs: tuple[str, ...] = (), force: bool = False,
                metrics: tuple[str, ...] = ()) -> StageRun:
    """Run one stage (not its upstream) with `dvc repro -s`; raise StageFailed if it fails. Then publish its
    headline `metrics` files (relative to the workspace) as a markdown artifact."""
    log = run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", "-s", *(["-f"] if force else []), stage]
    log.info("%s (in %s)", " ".join(["dvc", *cmd[3:]]), workspace)
    tail: deque[str] = deque(maxlen=20)
    ran = False
    with subprocess.Popen(cmd, cwd=workspace, env=dvc_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", bufsize=1) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                log.info("%s", line)
                tail.append(line)
                ran = ran or line.startswith(f"Running stage '{stage}'")
    if proc.returncode != 0:
        raise StageFailed(f"dvc repro -s {stage} exited with {proc.returncode}:\n" + "\n".join(tail))
    publish_headline(Path(workspace), stage, metrics, ran, log)
    return StageRun(stage, ran, tuple(str(Path(workspace, o).resolve()) for o in outs))
