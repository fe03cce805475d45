"""The one device resolver of every stage: `auto | cpu | cuda` from params.yaml -> a torch device."""
from __future__ import annotations

import torch

from stages.common.cli import StageError


class DeviceError(StageError):
    """CUDA was asked for but is not available."""


def resolve_device(name: str, section: str = "device") -> torch.device:
    """`auto` takes CUDA when present; `cuda` without a device is a clear error naming `section`."""
    if name not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"{section}={name!r}: expected auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{section}=cuda but no CUDA device is available")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
