"""The process group of a torchrun launch: rank, world size, barriers, broadcasts, sums, this rank's share."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dist:
    """This process's place in the run; a single process (world 1) makes every collective a no-op."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    created: bool = False        # this helper initialised the process group, so it destroys it

    @classmethod
    def setup(cls, use_cuda: bool) -> Dist:
        """Under torchrun (WORLD_SIZE > 1) join the process group (nccl on CUDA, gloo on CPU) unless the caller did."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        created = False
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            created = True
        return cls(dist.get_world_size(), dist.get_rank(), local_rank, created)

    @property
    def main(self) -> bool:
        """Rank 0: the one that decides about resuming and writes files."""
        return self.rank == 0

    def device(self, use_cuda: bool) -> torch.device:
        if not use_cuda:
            return torch.device("cpu")
        return torch.device(f"cuda:{self.local_rank}" if self.world > 1 else "cuda")

    def teardown(self) -> None:
        if self.created and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum_(self, t: Tensor) -> None:
        """Sum `t` over ranks, in place."""
        if self.world > 1:
            dist.all_reduce(t)

    def share(self, specs: list[Any]) -> list[Any]:
        """Rank r takes specs[r::W], all ranks cut to len // W (the tail dropped, like drop_last=True)."""
        specs = list(specs)
        return specs[self.rank::self.world][: len(specs) // self.world] if self.world > 1 else specs

    def wrap(self, model: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
        """The module to run forward on: `model` itself, or its DistributedDataParallel wrapper under torchrun."""
        if self.world == 1:
            return model
        return DistributedDataParallel(model, device_ids=[self.local_rank] if device.type == "cuda" else None,
                                       find_unused_parameters=find_unused_parameters)
