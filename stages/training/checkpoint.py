"""The checkpoint of a training run: saved, recovered after a kill, judged fit to resume, restored.

out_dir/checkpoint/ holds the latest full state, swapped in as a whole folder (`atomic_dir`), so a
kill during a checkpoint write leaves the previous one intact: model.pt, optim-<group>.pt,
sched-<group>.pt, rng.pt, best.pt when the run validates (the best epoch's weights so far; all loadable
with `torch.load(weights_only=True)`), and state.json
(fingerprint, run signature, groups, total steps, torch version, and the `TrainState`: step, epoch,
position, metric sums, elapsed time, ...). Rank 0 writes it after a barrier; every rank reads it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from stages.common.weights import CheckpointError
from stages.training.config import TrainConfig
from stages.training.distributed import Dist
from stages.training.groups import OptimGroup
from stages.training.metrics_log import LOSSES
from stages.training.state import TrainState
from storage.atomic import TMP_PREFIX, atomic_dir, write_json

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
BEST = "best.pt"


def cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _rng_state() -> dict[str, Any]:
    rng: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["torch_cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available() and len(rng["torch_cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["torch_cuda"])


def run_signature(cfg: TrainConfig, groups: Sequence[OptimGroup], plans: list[list[Any]], world: int,
                  validation: dict[str, Any] | None = None) -> str:
    """What a checkpoint must share with this run to be resumed (besides the caller's fingerprint)."""
    # what changes the result; how often to checkpoint, where to run and DDP bookkeeping do not
    cfg_part = {k: v for k, v in asdict(cfg).items()
                if k not in ("checkpoint_every_steps", "device", "find_unused_parameters")}
    blob = {"cfg": cfg_part, "groups": [g.describe() for g in groups], "plan_lengths": [len(p) for p in plans],
            "world_size": world}
    if validation is not None:  # only then: checkpoints of runs that do not validate keep their signature
        blob["validation"] = validation
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


class Checkpointer:
    """Saves and restores the model, optimizers, schedulers, RNG and `TrainState` of one run in out_dir/checkpoint.

    `meta` (fingerprint, signature, groups, ...) goes into every state.json; a checkpoint is resumed
    only when its fingerprint and signature equal this run's and its weights fit the model. `best` (the
    best validated epoch's weights, set by the trainer) goes into every checkpoint once set.
    """

    def __init__(self, out_dir: Path, dist: Dist, meta: dict[str, Any], model: nn.Module,
                 optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, LambdaLR]) -> None:
        self.out_dir, self.path, self.dist, self.meta = out_dir, out_dir / CHECKPOINT, dist, meta
        self.model, self.optimizers, self.schedulers = model, optimizers, schedulers
        self.best: dict[str, Tensor] | None = None

    def recover_swap(self) -> None:
        """`atomic_dir` swaps folders in two renames; a kill between them leaves only the previous
        checkpoint, under the name `.tmp-checkpoint.old`: put it back before temporaries are cleaned."""
        old = self.out_dir / (TMP_PREFIX + CHECKPOINT + ".old")
        if not self.path.exists() and old.is_dir():
            os.replace(old, self.path)
            log.info("recovered the checkpoint from an interrupted swap")

    def decide(self) -> tuple[bool, str]:
        """Whether to resume, and why (for the log): rank 0 decides, every rank gets its answer."""
        return self.dist.broadcast(self._decide() if self.dist.main else None)

    def _decide(self) -> tuple[bool, str]:
        if not (self.path / "state.json").is_file():
            return False, "no checkpoint"
        try:
            meta = json.loads((self.path / "state.json").read_text())
            if meta.get("fingerprint") != self.meta["fingerprint"]:
                return False, "checkpoint fingerprint differs (params or inputs changed)"
            if meta.get("signature") != self.meta["signature"]:
                return False, "checkpoint was made with another training config, groups, plan or world size"
            if meta.get("state", {}).get("columns") and not (self.out_dir / LOSSES).is_file():
                # resumed, the run would end with no log (a workspace restored from a lock whose log was uncached)
                return False, f"the checkpoint's training log {LOSSES} is missing"
            sd = torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means: start afresh
            return False, f"checkpoint unreadable ({e})"
        want = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        if {k: tuple(v.shape) for k, v in sd.items()} != want:
            return False, "checkpoint model state does not fit the model (keys or shapes differ)"
        return True, f"checkpoint at step {meta.get('state', {}).get('step')}"

    def restore(self) -> TrainState:
        """Load the checkpoint into the model, optimizers, schedulers and RNG; return its `TrainState`."""
        try:
            ck = self._read()
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"rank {self.dist.rank} cannot read {self.path} ({e}); "
                                  "under DDP out_dir must be on a filesystem every rank sees") from e
        self.model.load_state_dict(ck["model"])
        for n in self.optimizers:
            self.optimizers[n].load_state_dict(ck["optim"][n])
            self.schedulers[n].load_state_dict(ck["sched"][n])
        _set_rng_state(ck["rng"])
        self.best = ck["best"]
        return TrainState(**ck["meta"]["state"])

    def _read(self) -> dict[str, Any]:
        def load(name: str) -> Any:
            return torch.load(self.path / name, map_location="cpu", weights_only=True)

        meta = json.loads((self.path / "state.json").read_text())
        return {"meta": meta, "model": load("model.pt"), "rng": load("rng.pt"),
                "optim": {n: load(f"optim-{n}.pt") for n in meta["groups"]},
                "sched": {n: load(f"sched-{n}.pt") for n in meta["groups"]},
                "best": load(BEST) if (self.path / BEST).is_file() else None}

    def save(self, state: TrainState) -> None:
        """After a barrier, rank 0 builds the folder under a temporary name and swaps it in (the files
        inside need no own rename)."""
        self.dist.barrier()
        if not self.dist.main:
            return
        with atomic_dir(self.path) as tmp:
            torch.save(cpu_state(self.model), tmp / "model.pt")
            for name, opt in self.optimizers.items():
                torch.save(opt.state_dict(), tmp / f"optim-{name}.pt")
            for name, sched in self.schedulers.items():
                torch.save(sched.state_dict(), tmp / f"sched-{name}.pt")
            torch.save(_rng_state(), tmp / "rng.pt")
            if self.best is not None:
                torch.save(self.best, tmp / BEST)
            write_json(tmp / "state.json", {**self.meta, "state": asdict(state)})
