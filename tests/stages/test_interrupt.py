"""Kill stages with SIGKILL part way; the rerun must finish with the bytes of an uninterrupted run."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stages import prepare, segment
from tests.conftest import REPO

BIG = {"prepare": {"scenes": {"splits": {"train": 200, "val": 8, "test": 8}}}, "features": {"shard_size": 8}}


def _stage(name: str, cwd: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO), "PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", f"stages.{name}", "--dataset", "scenes"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"stage ended before it could be killed:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("stage did not reach the kill point")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _tars(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))} | \
        {"index": (folder / "index.parquet").read_bytes()}


@pytest.mark.slow
def test_features_killed_then_rerun_is_byte_identical(workspace, tmp_path):
    workspace(BIG)
    prepare.run("scenes")
    segment.run("scenes")
    out = tmp_path / "data/features/scenes"

    proc = _stage("features", tmp_path)
    _kill_when(proc, lambda: len(list(out.glob("nodes-*.json"))) >= 3)
    done_at_kill = len(list(out.glob("nodes-*.json")))
    assert proc.returncode == -signal.SIGKILL
    assert 3 <= done_at_kill < 27 and not (out / "index.parquet").exists()

    rerun = _stage("features", tmp_path)
    log, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, log
    assert f"resuming: {done_at_kill} of 27 shards already complete" in log
    resumed = _tars(out)
    assert not list(out.glob(".tmp-*"))

    shutil.rmtree(out)
    clean = _stage("features", tmp_path)
    log, _ = clean.communicate(timeout=300)
    assert clean.returncode == 0, log
    assert _tars(out) == resumed


@pytest.mark.slow
def test_prepare_killed_leaves_no_partial_output(workspace, tmp_path):
    workspace(BIG)
    final = tmp_path / "data/prepared/scenes"
    proc = _stage("prepare", tmp_path)
    _kill_when(proc, lambda: any((tmp_path / "data/prepared").glob(".tmp-scenes*/images/*.png")))
    assert not final.exists()  # the half-built folder never took the final name
    rerun = _stage("prepare", tmp_path)
    log, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, log
    assert (final / "counts.json").is_file()
    assert not list((tmp_path / "data/prepared").glob(".tmp-*"))
