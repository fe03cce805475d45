"""Flow `stage`: rerun one stage by name (`dvc repro -s`), optionally after setting parameters.

Only that stage runs; its upstream outputs must exist. Overrides are validated, then written
into the workspace's params.yaml, so DVC (and later `dvc status`) sees the values it ran with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.dag import check_known, read_dag
from flows.lock import workspace_lock
from flows.pipeline import holder, run_stages
from flows.policy import flows_params
from flows.repro import run_logger
from stages.common.overrides import write_overrides


@flow(name="stage")
def rerun_stage(stage: str, set_params: dict[str, Any] | None = None, force: bool = False, workspace: str = ".",
                retries: int | None = None, retry_delay_s: float | None = None,
                lock_wait_s: float | None = None) -> list[str]:
    """Rerun `stage` (e.g. "features@scenes"); `set_params`: {"features.max_nodes": 24, ...};
    `force`: run it even when DVC finds it up to date. Returns its output paths."""
    ws = Path(workspace).resolve()
    policy = flows_params(ws, retries=retries, retry_delay_s=retry_delay_s, lock_wait_s=lock_wait_s)
    dag = read_dag(ws)
    check_known(dag, [stage])
    missing = [f"{u}: {o}" for u in dag[stage].upstream for o in dag[u].outs if not (ws / o).exists()]
    if missing:
        raise FileNotFoundError(f"{stage} needs upstream outputs that do not exist ({'; '.join(missing)}): "
                                f"run the pipeline flow with targets [{stage!r}] instead")
    log = run_logger()
    with workspace_lock(ws, holder(), policy.lock_wait_s, notify=log.info):
        if set_params:
            write_overrides(ws / "params.yaml", set_params)
            log.info("params.yaml: set %s", ", ".join(f"{k}={v!r}" for k, v in set_params.items()))
        runs = run_stages(ws, [dag[stage]], policy, force=force)
    return list(runs[stage].outs)
