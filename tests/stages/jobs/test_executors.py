"""Shard executors: in-process, local processes and Dask all write the same bytes."""
import logging
import shutil
from pathlib import Path

import pytest

from stages import features, prepare, segment
from stages.common.params import ExecutorParams, ParamsError, validate
from stages.jobs import executors
from tests.stages.jobs.shard_jobs import fail_on_three, square


@pytest.mark.parametrize("cfg", [None, ExecutorParams(workers=1), ExecutorParams(workers=2)])
def test_every_job_yields_its_own_result(cfg):
    assert sorted(executors.run_jobs(square, [1, 2, 3, 4], cfg)) == [(1, 1), (2, 4), (3, 9), (4, 16)]


def test_worker_errors_propagate():
    with pytest.raises(ValueError, match="shard 3 is bad"):
        list(executors.run_jobs(fail_on_three, [1, 2, 3], ExecutorParams(workers=2)))


def test_dask_address_needs_dask_executor():
    with pytest.raises(ParamsError, match="dask_address is set .* but executor is 'process'"):
        validate("segment", {"dask_address": "tcp://127.0.0.1:8786"})
    with pytest.raises(ParamsError, match="features.executor: Input should be 'process' or 'dask'"):
        validate("features", {"executor": "ray"})


def _outputs(root: Path) -> dict[str, bytes]:
    return {f"{d}/{p.name}": p.read_bytes() for d in ("masks", "features")
            for p in sorted((root / "data" / d / "scenes").iterdir()) if p.suffix in (".tar", ".parquet")}


@pytest.mark.slow
def test_dask_local_cluster_shards_equal_single_process(workspace, tmp_path, caplog):
    """segment on a LocalCluster the engine starts, features on a 2-worker cluster given by address."""
    from distributed import LocalCluster

    caplog.set_level(logging.INFO, logger="stages.jobs.executors")

    workspace()  # executor: process, workers: 1 -> every shard in the stage's own process
    prepare.run("scenes")
    segment.run("scenes"), features.run("scenes")
    single = _outputs(tmp_path)
    assert sum(k.endswith(".tar") for k in single) == 10  # 36 images / shard_size 8, two stages
    shutil.rmtree(tmp_path / "data/masks"), shutil.rmtree(tmp_path / "data/features")

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster:
        workspace({"segment": {"executor": "dask", "workers": 2},
                   "features": {"executor": "dask", "dask_address": cluster.scheduler_address}})
        segment.run("scenes")
        features.run("scenes")
        on_cluster = cluster.scheduler.task_prefixes["features_shard"].state_counts
    assert "dask: 5 shards on a LocalCluster of 2 processes" in caplog.text
    assert f"dask: 5 shards on the cluster at {cluster.scheduler_address}" in caplog.text
    assert sum(on_cluster.values()) > 0, on_cluster
    assert _outputs(tmp_path) == single
