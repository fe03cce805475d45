"""Optimizer groups: the parameters one optimizer trains with one lr schedule (or frozen), their checks, optimizers."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from stages.training.config import TrainError

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class OptimGroup:
    """Parameters trained together by one optimizer with one lr schedule (or frozen)."""

    name: str
    params: list[nn.Parameter]
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-4
    weight_decay: float = 1e-2
    momentum: float = 0.9          # sgd only
    frozen: bool = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "optimizer": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "frozen": self.frozen, "tensors": len(self.params),
                "numel": sum(p.numel() for p in self.params)}


def check_groups(model: nn.Module, groups: Sequence[OptimGroup]) -> None:
    """Unique valid names, known optimizers, each parameter in at most one group, every trainable one in some."""
    names = [g.name for g in groups]
    if not groups or len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise TrainError(f"group names must be unique, non-empty and [A-Za-z0-9_-]: {names}")
    owner: dict[int, str] = {}
    for g in groups:
        if g.optimizer not in ("adamw", "sgd"):
            raise TrainError(f"group {g.name}: optimizer must be 'adamw' or 'sgd', got {g.optimizer!r}")
        for p in g.params:
            if id(p) in owner:
                raise TrainError(f"a parameter is in both groups {owner[id(p)]} and {g.name}")
            owner[id(p)] = g.name
    named = dict(model.named_parameters())
    by_id = {id(p): n for n, p in named.items()}
    foreign = [g.name for g in groups for p in g.params if id(p) not in by_id]
    if foreign:
        raise TrainError(f"groups {sorted(set(foreign))} hold parameters that are not the model's")
    loose = [n for n, p in named.items() if p.requires_grad and id(p) not in owner]
    if loose:
        raise TrainError(f"{len(loose)} trainable parameters are in no group (add a frozen group?): {loose[:5]}")


def set_requires_grad(groups: Sequence[OptimGroup]) -> None:
    """Frozen groups get no gradient, the others do (whatever the model set before)."""
    for g in groups:
        for p in g.params:
            p.requires_grad_(not g.frozen)


def trainable_groups(groups: Sequence[OptimGroup]) -> list[OptimGroup]:
    trainable = [g for g in groups if not g.frozen]
    if not trainable:
        raise TrainError("every group is frozen: nothing to train")
    return trainable


def make_optimizer(g: OptimGroup) -> torch.optim.Optimizer:
    """Fused kernels (CPU and CUDA): one pass over all tensors of the group, much faster than the per-tensor loop."""
    if g.optimizer == "adamw":
        return torch.optim.AdamW(g.params, lr=g.lr, weight_decay=g.weight_decay, fused=True)
    return torch.optim.SGD(g.params, lr=g.lr, momentum=g.momentum, weight_decay=g.weight_decay, fused=True)
