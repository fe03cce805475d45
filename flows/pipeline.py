"""Flow `pipeline`: every stage of the DVC DAG (or the targets and their upstream) as one task each.

Stages run one at a time in DAG order (one `dvc repro` per workspace at once). DVC skips the
stages that are up to date. A failed stage is retried per the policy; if it still fails, the
stages downstream of it are not run, independent branches still are, and the flow fails.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.dag import Stage, read_dag, select
from flows.lock import workspace_lock
from flows.policy import flows_params
from flows.repro import StageRun, repro_stage, run_logger
from stages.common.params import FlowsParams


class PipelineFailed(RuntimeError):
    """At least one stage failed after its retries."""


def holder() -> str:
    return f"flow run {flow_run.name!r} ({flow_run.id})" if flow_run.id else "a flow outside Prefect"


def run_stages(workspace: Path, stages: list[Stage], policy: FlowsParams, force: bool = False) -> dict[str, StageRun]:
    """Run `stages` in order as tasks; skip those downstream of a failure; raise PipelineFailed at the end."""
    log = run_logger()
    task = repro_stage.with_options(retries=policy.retries, retry_delay_seconds=policy.retry_delay_s)
    done: dict[str, StageRun] = {}
    failed: list[str] = []
    blocked: dict[str, str] = {}  # stage -> the failed stage upstream of it
    for stage in stages:
        cause = next((blocked.get(u, u) for u in stage.upstream if u in failed or u in blocked), None)
        if cause:
            blocked[stage.name] = cause
            log.warning("not running %s: upstream stage %s failed", stage.name, cause)
            continue
        state = task(str(workspace), stage.name, stage.outs, force, stage.metrics, return_state=True)
        if state.is_completed():
            done[stage.name] = state.result()
        else:
            failed.append(stage.name)
    if failed:
        raise PipelineFailed(f"failed: {', '.join(failed)}"
                             + (f"; not run (upstream failed): {', '.join(blocked)}" if blocked else ""))
    return done


@flow(name="pipeline")
def pipeline(targets: list[str] | None = None, workspace: str = ".", retries: int | None = None,
             retry_delay_s: float | None = None, lock_wait_s: float | None = None) -> dict[str, list[str]]:
    """Bring the DVC pipeline up to date (`targets`: only these stages and their upstream).

    Returns each stage's output paths. retries / retry_delay_s / lock_wait_s default to params.yaml `flows`.
    """
    ws = Path(workspace).resolve()
    policy = flows_params(ws, retries=retries, retry_delay_s=retry_delay_s, lock_wait_s=lock_wait_s)
    stages = select(read_dag(ws), targets)
    log = run_logger()
    log.info("%d stages in DAG order: %s", len(stages), ", ".join(s.name for s in stages))
    with workspace_lock(ws, holder(), policy.lock_wait_s, notify=log.info):
        runs = run_stages(ws, stages, policy)
    ran = [name for name, r in runs.items() if r.ran]
    log.info("ran %d stages (%s); %d were up to date", len(ran), ", ".join(ran) or "none", len(runs) - len(ran))
    return {name: list(r.outs) for name, r in runs.items()}
