"""Learning-rate schedules: linear warm-up, then cosine or linear decay to a floor at the last step."""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from stages.training.config import TrainConfig


def lr_factor(step: int, total: int, warmup_ratio: float, min_lr_ratio: float, decay: str = "cosine") -> float:
    """Multiplier of the base lr for 0-based `step` of `total`: linear warm-up to 1 over
    round(warmup_ratio * total) steps, then decay from 1 to min_lr_ratio at the last step."""
    warmup = round(warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    span = total - warmup - 1
    p = min(1.0, (step - warmup) / span) if span > 0 else 1.0
    shape = 0.5 * (1.0 + math.cos(math.pi * p)) if decay == "cosine" else 1.0 - p
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


def make_schedulers(optimizers: dict[str, torch.optim.Optimizer], total: int,
                    cfg: TrainConfig) -> dict[str, LambdaLR]:
    """One LambdaLR per optimizer, all on the same `lr_factor` curve over `total` steps."""

    # a plain function, not a partial: LambdaLR.state_dict stores the __dict__ of callable objects
    def factor(step: int) -> float:
        return lr_factor(step, total, cfg.warmup_ratio, cfg.min_lr_ratio, cfg.decay)

    return {n: LambdaLR(opt, factor) for n, opt in optimizers.items()}
