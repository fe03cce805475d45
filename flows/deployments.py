"""The served deployments: `pipeline` (on a cron schedule) and `stage` (on demand, by name).

The `stage` parameter is a choice of the DAG's stage names, fixed when the deployments are built
(`python -m flows ui` reads dvc.yaml at its start): the run form offers them in a dropdown and the
API refuses any other name before a flow run is created.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.utilities.callables import ParameterSchema, generate_parameter_schema, parameter_docstrings

from flows.pipeline import pipeline
from flows.stage import rerun_stage


def stage_schema(stages: Sequence[str]) -> ParameterSchema:
    """rerun_stage's parameter schema with `stage` typed as an Enum of `stages` (a dropdown in the form)."""
    if not stages:
        raise ValueError("the DAG has no stages: nothing for the `stage` deployment to run")
    choice = Enum("Stage", {name: name for name in stages}, type=str)
    signature = inspect.signature(rerun_stage.fn, eval_str=True)
    signature = signature.replace(parameters=[p.replace(annotation=choice) if p.name == "stage" else p
                                              for p in signature.parameters.values()])
    return generate_parameter_schema(signature, parameter_docstrings(inspect.getdoc(rerun_stage.fn)))


def deployments(workspace: Path, stages: Sequence[str], cron: str | None, timezone: str = "UTC",
                targets: list[str] | None = None) -> list[RunnerDeployment]:
    """Both deployments, bound to `workspace`; `stages`: the DAG's stage names, the choices of `stage`;
    `cron` None: `pipeline` runs only when triggered; `targets`: the stages `pipeline` brings up to date
    by default (None: all).
    """
    try:
        schedules = [Cron(cron, timezone=timezone)] if cron else []
    except ValueError as e:
        raise ValueError(f"invalid cron schedule {cron!r} (e.g. '0 3 * * *'): {e}") from None
    ws, module = {"workspace": str(workspace)}, EntrypointType.MODULE_PATH
    stage = rerun_stage.to_deployment("stage", parameters=ws, entrypoint_type=module, tags=["gshn"],
                                      description="Rerun one stage by name, optionally with parameter overrides.")
    stage._parameter_openapi_schema = stage_schema(stages)  # as Prefect itself sets it (from the flow's signature)
    return [
        pipeline.to_deployment("pipeline", schedules=schedules, parameters=ws | {"targets": targets},
                               entrypoint_type=module, tags=["gshn"],
                               description="Bring the DVC pipeline up to date, stage by stage."),
        stage,
    ]


def serve_deployments(workspace: Path, stages: Sequence[str], cron: str | None, timezone: str = "UTC",
                      targets: list[str] | None = None) -> None:
    """Register both deployments and run their flow runs here until interrupted."""
    serve(*deployments(workspace, stages, cron, timezone, targets))
