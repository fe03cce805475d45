"""The one device resolver of every stage: `auto | cpu | cuda` from params.yaml -> a torch device; peak memory."""
from __future__ import annotations

import resource
import sys

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


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process so far (`peak_rss_mib`) and, on CUDA, the most memory torch has
    allocated on `device` (`peak_cuda_mib`), in MiB."""
    rss_unit = 1 if sys.platform == "darwin" else 1024     # ru_maxrss: bytes on macOS, KiB on Linux
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * rss_unit / 2**20}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out
