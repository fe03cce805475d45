"""The served deployments: `pipeline` (on a cron schedule) and `stage` (on demand, by name)."""
from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from flows.pipeline import pipeline
from flows.stage import rerun_stage


def deployments(workspace: Path, cron: str | None, timezone: str = "UTC",
                targets: list[str] | None = None) -> list[RunnerDeployment]:
    """Both deployments, bound to `workspace`; `cron` None: `pipeline` runs only when triggered.

    `targets`: the stages `pipeline` brings up to date by default (None: all).
    """
    try:
        schedules = [Cron(cron, timezone=timezone)] if cron else []
    except ValueError as e:
        raise ValueError(f"invalid cron schedule {cron!r} (e.g. '0 3 * * *'): {e}") from None
    ws, module = {"workspace": str(workspace)}, EntrypointType.MODULE_PATH
    return [
        pipeline.to_deployment("pipeline", schedules=schedules, parameters=ws | {"targets": targets},
                               entrypoint_type=module, tags=["gshn"],
                               description="Bring the DVC pipeline up to date, stage by stage."),
        rerun_stage.to_deployment("stage", parameters=ws, entrypoint_type=module, tags=["gshn"],
                                  description="Rerun one stage by name, optionally with parameter overrides."),
    ]


def serve_deployments(workspace: Path, cron: str | None, timezone: str = "UTC",
                      targets: list[str] | None = None) -> None:
    """Register both deployments and run their flow runs here until interrupted."""
    serve(*deployments(workspace, cron, timezone, targets))
