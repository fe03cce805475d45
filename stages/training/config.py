"""The training config a stage hands to the loop, and the error for anything that keeps training from running."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class TrainError(RuntimeError):
    """Training cannot run: inconsistent groups, config or model outputs, or a non-finite loss."""


@dataclass
class TrainConfig:
    epochs: int = 1
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.01
    decay: Literal["cosine", "linear"] = "cosine"
    grad_clip: float | None = None            # max global grad norm over all trainable params; None = off
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True                         # bf16 autocast of the forward pass, on CUDA only
    checkpoint_every_steps: int | None = None  # besides the checkpoint at the end of every epoch
    log_every: int = 10
    find_unused_parameters: bool = False      # DDP: set when some trainable params get no gradient

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TrainError(f"epochs must be >= 1, got {self.epochs}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise TrainError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TrainError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.decay not in ("cosine", "linear"):
            raise TrainError(f"decay must be 'cosine' or 'linear', got {self.decay!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise TrainError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.log_every < 1 or (self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1):
            raise TrainError("log_every and checkpoint_every_steps must be >= 1")
