"""Where shard jobs run: in this process, a local process pool, or a Dask cluster (`ExecutorParams`).

Every executor yields (job, result) pairs as shards finish; the caller assembles results in shard
order, so the bytes written never depend on the executor or on the order of completion.
"""
from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

from stages.common.params import ExecutorParams

log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")


def run_jobs(worker: Callable[[J], R], jobs: Sequence[J], cfg: ExecutorParams | None) -> Iterator[tuple[J, R]]:
    """Run `worker` over `jobs` on the executor `cfg` names (None: in this process, one by one)."""
    if cfg is not None and cfg.executor == "dask":
        yield from _dask(worker, jobs, cfg)
    elif cfg is not None and cfg.workers > 1 and len(jobs) > 1:
        yield from _processes(worker, jobs, cfg.workers)
    else:
        for job in jobs:
            yield job, worker(job)


def _processes(worker: Callable[[J], R], jobs: Sequence[J], workers: int) -> Iterator[tuple[J, R]]:
    # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(worker, job): job for job in jobs}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _dask(worker: Callable[[J], R], jobs: Sequence[J], cfg: ExecutorParams) -> Iterator[tuple[J, R]]:
    """On the cluster at cfg.dask_address, or on a LocalCluster of cfg.workers single-threaded processes.

    The cluster's workers must be able to import this project (start them from the repository root
    with its virtual environment).
    """
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    if cfg.dask_address:
        log.info("dask: %d shards on the cluster at %s", len(jobs), cfg.dask_address)
        client, cluster = Client(cfg.dask_address, timeout="30s"), None
    else:
        n = min(cfg.workers, len(jobs)) or 1
        log.info("dask: %d shards on a LocalCluster of %d processes", len(jobs), n)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0", silence_logs=logging.WARNING)  # any free port
        client = Client(cluster)
    try:
        futures = client.map(worker, list(jobs), pure=False)
        job_of = {f.key: job for f, job in zip(futures, jobs)}
        for fut, result in dask_completed(futures, with_results=True):
            yield job_of[fut.key], result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
