"""Run settings shared by the flows: a flow parameter left empty takes params.yaml's `flows` section."""
from __future__ import annotations

from pathlib import Path

from stages.common.params import FlowsParams, read_yaml, validate


def flows_params(workspace: Path, **given: float | int | None) -> FlowsParams:
    """params.yaml's `flows` section of the workspace, with the non-None `given` values on top."""
    base = read_yaml(workspace / "params.yaml").get("flows") or {}
    return validate("flows", base | {k: v for k, v in given.items() if v is not None})
