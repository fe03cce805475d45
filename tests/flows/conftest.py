"""Flow fixtures: scratch DVC projects with tiny params, and one real Prefect server per session."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import flows  # noqa: F401  (sets Prefect's environment defaults before Prefect is imported)
from tests.conftest import copy_code, tiny_params

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
# The flow tests run TARGET and its upstream only (prepare, segment, features of scenes, and whatever
# dvc.yaml puts before them), never the pretraining and downstream stages.
TARGET = "features@scenes"


def sh(cmd: list[str], cwd: Path) -> str:
    env = os.environ | GIT_ENV | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PROGRESS": "0"}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def make_project(root: Path, overrides: dict | None = None) -> Path:
    """A git + DVC copy of the project's code with tiny params (fast, scenes only)."""
    copy_code(root)
    write_params(root, tiny_params(overrides))
    sh(["git", "init", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "init"], root)
    return root


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def changed(root: Path, targets: tuple[str, ...] = (TARGET,)) -> set[str]:
    """Stages `dvc status` finds out of date among the targets and their upstream (`inputs@*`, which lists the
    files outside the project on every run, only when its manifest changed)."""
    out = sh([sys.executable, "-m", "dvc", "status", "--with-deps", "--json", *targets], root)
    return {s for s, why in json.loads(out[out.index("{"):]).items() if why != ["always changed"]}


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server` on a free loopback port (its first start is slow); its API URL."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from flows.server import HOST, prefect_server

    with socket.socket() as s:        # a port the OS has just given out is free
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(port, home) as api, temporary_settings({PREFECT_API_URL: api, PREFECT_HOME: home}):
        yield api


def sub_dag(root: Path) -> list[str]:
    """TARGET and its upstream stages, in DAG order."""
    from flows.dag import read_dag, select
    return [s.name for s in select(read_dag(root), [TARGET])]


@dataclass(frozen=True)
class Built:
    root: Path
    flow_run_id: str
    stages: list[str]  # sub_dag(root)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Built:
    """A scratch project brought up to date for TARGET by the pipeline flow."""
    from flows.pipeline import pipeline

    root = make_project(tmp_path_factory.mktemp("built") / "project")
    state = pipeline(targets=[TARGET], workspace=str(root), return_state=True)
    assert state.is_completed(), state.message
    outs = state.result()
    assert list(outs) == sub_dag(root) and {"prepare@scenes", "segment@scenes", TARGET} <= set(outs)
    assert all(Path(p).exists() for paths in outs.values() for p in paths)
    return Built(root, str(state.state_details.flow_run_id), list(outs))


@pytest.fixture
def project_copy(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built project (data, DVC cache and lock included)."""
    dst = tmp_path / "project"
    shutil.copytree(built.root, dst, symlinks=True)
    return dst
