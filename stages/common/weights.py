"""The one way to read weights: a weights-only state dict, with errors that name the stage to rerun."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from stages.common.cli import StageError


class CheckpointError(StageError):
    """A weights or checkpoint file exists but cannot be read, or does not fit the model."""


def load_weights(path: str | os.PathLike, rerun: str | None = None) -> dict[str, Tensor]:
    """A weights-only state dict on CPU (`torch.load(weights_only=True)`: no code runs from the file).
    `rerun` names the command that rebuilds the file, for the error message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: run `{rerun or 'the stage that trains it'}` first")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path} is not a readable weights-only state dict: {e}") from e
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return sd


def load_into(model: nn.Module, path: str | os.PathLike, what: str, rerun: str) -> None:
    """Load `path` into `model` (strict); a mismatch says which model `what` was expected and what to rerun."""
    sd = load_weights(path, rerun)
    try:
        model.load_state_dict(sd)
    except (RuntimeError, TypeError, AttributeError) as e:
        lines = str(e).splitlines()
        first = lines[1].strip() if len(lines) > 1 else lines[0]
        raise CheckpointError(f"{path} does not fit {what} ({first[:400]}); rerun `{rerun}`") from None
