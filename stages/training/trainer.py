"""The shared training loop of the pretraining and finetuning stages: model-agnostic, resumable, exact.

Contract with the caller
- model: any `nn.Module` whose `forward(batch)` returns a dict of scalar tensors. Key "loss" is
  optimised; every key (loss included) is logged. Every step on every rank must return the same keys.
- plan(epoch) -> list of batch specs (e.g. lists of sample indices), deterministic for a given
  epoch; collate(spec) -> batch. Tensors in the batch (also inside dicts, lists, tuples) and
  objects with a `.to(device)` method (e.g. `models.nodes.NodeBatch`) are moved to the device.
  The number of samples of a step is len(spec) when the spec is a sequence, else 1.
- groups: one `OptimGroup` per set of parameters, each with its own optimizer (AdamW or SGD) and
  learning-rate schedule (linear warm-up over `warmup_ratio` of all steps, then cosine or linear
  decay to `min_lr_ratio` x lr at the last step). Frozen groups get requires_grad=False and no
  optimizer; trainable ones get requires_grad=True. Every parameter that still requires a gradient
  must be in a group. Frozen means "no gradient updates": buffers (e.g. batch-norm running
  statistics) still update in train mode; put such modules in eval mode in the model if wanted.

Exact resume (the reason for the per-step seeding)
Before each step the global RNGs (torch CPU and CUDA, `random`, numpy) are seeded from
sha256(seed, epoch, step, rank) (`step_seed`), and only then is the batch collated and the model
run. Everything random in a step (dropout, masking done in collate, negative sampling) depends only
on where the step is in the schedule, never on what ran before in the process. Together with the
checkpointed weights, optimizer and scheduler states, position in the epoch, and running metric
sums (and the best epoch's weights), a run killed at any point and resumed ends with bit-identical
weights, metrics, `plots/losses.tsv` and `plots/val.tsv` to one never interrupted (on CPU; CUDA kernels
need not be deterministic).

Files under out_dir (written by rank 0 only)
- model.pt: final weights-only state dict (CPU tensors; `load_weights`).
- checkpoint/: the latest full state (`checkpoint.py`), written at the end of every epoch and, if
  `checkpoint_every_steps` is set, every that many steps.
- metrics.json and plots/losses.tsv (`metrics_log.py`).
- plots/val.tsv when the caller passes a `Validation`: the model scored after every epoch; model.pt then
  holds the best epoch's weights (or the last's), and checkpoint/best.pt carries them across a kill
  (`validation.py`).

Resume: if out_dir/checkpoint exists and both its fingerprint (the caller's string, e.g. a hash of
params and inputs) and the run signature (config, groups, plan lengths, world size) match, training
continues from it; otherwise the old outputs are removed and training starts fresh, with the reason
in the log. A finished run that is rerun only rewrites model.pt and metrics.json (and plots/val.tsv).

Distributed: under torchrun (env WORLD_SIZE > 1) the process group is initialised (gloo on CPU, nccl
on CUDA) unless the caller already did, the model is wrapped in DistributedDataParallel, and rank r
takes specs plan(epoch)[r::W], all ranks truncated to len(plan(epoch)) // W steps (the last
len % W specs of an epoch are dropped, like DistributedSampler(drop_last=True)). Logged values are
averaged over ranks every step. Rank 0 decides whether to resume and every rank reads the same
checkpoint (out_dir must be on a shared filesystem); rank 0 writes checkpoints after a barrier.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from stages.common.device import DeviceError, resolve_device
from stages.common.weights import CheckpointError, load_weights
from stages.training.checkpoint import CHECKPOINT, Checkpointer, cpu_state, run_signature
from stages.training.config import TrainConfig, TrainError
from stages.training.distributed import Dist
from stages.training.groups import OptimGroup, check_groups, make_optimizer, set_requires_grad, trainable_groups
from stages.training.metrics_log import LOSSES, METRICS, LossesTsv, check_output, run_metrics, step_values, trim_losses
from stages.training.schedule import lr_factor, make_schedulers
from stages.training.state import TrainState, means
from stages.training.validation import VAL, Validation, snapshot, validate, write_val_tsv
from storage.atomic import atomic_path, clean_temporaries, write_json

log = logging.getLogger(__name__)

WEIGHTS = "model.pt"


# ------------------------------------------------------------------------------------ steps

def step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """The seed of one step: a function of its place in the schedule only (63 bits)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{step}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _seed_everything(s: int) -> None:
    torch.manual_seed(s)          # CPU and every CUDA device
    random.seed(s)
    np.random.seed(s % (1 << 32))


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors and objects with `.to(device)` move; dicts, lists, tuples are walked; the rest is kept."""
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, to_device(v, device)) for k, v in obj.items())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    if callable(getattr(obj, "to", None)) and not isinstance(obj, (str, bytes, type)):
        return obj.to(device)
    return obj


def _n_samples(spec: Any) -> int:
    if isinstance(spec, (list, tuple, range, np.ndarray, Tensor)):
        return len(spec)
    return 1


@dataclass
class _Run:
    """What stays fixed while a run trains (the model's weights and optimizer states change in place)."""

    cfg: TrainConfig
    dist: Dist
    device: torch.device
    model: nn.Module
    net: nn.Module                              # model, or its DDP wrapper: what runs forward
    params: list[nn.Parameter]                  # every trainable parameter (gradient clipping)
    plans: list[list[Any]]                      # this rank's specs of each epoch
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, LambdaLR]
    checkpoints: Checkpointer
    losses: LossesTsv
    collate: Callable[[Any], Any]
    autocast: contextlib.AbstractContextManager[Any]
    progress: bool
    validation: Validation | None


@dataclass
class _Clock:
    """Seconds of training: `base` from before this process (a resumed run) plus time since `start`."""

    base: float
    start: float

    def seconds(self) -> float:
        return self.base + time.perf_counter() - self.start


def _train_step(run: _Run, epoch: int, step: int, spec: Any) -> tuple[dict[str, float], dict[str, float], int]:
    """One optimizer step on `spec`: (values averaged over ranks, lr each group used, samples over ranks)."""
    _seed_everything(step_seed(run.cfg.seed, epoch, step, run.dist.rank))
    batch = to_device(run.collate(spec), run.device)
    for opt in run.optimizers.values():
        opt.zero_grad(set_to_none=True)
    with run.autocast:
        out = run.net(batch)
    check_output(out)
    out["loss"].backward()
    extra = {}
    if run.cfg.grad_clip is not None:
        extra["grad_norm"] = torch.nn.utils.clip_grad_norm_(run.params, run.cfg.grad_clip)
    vals = step_values(out, extra, _n_samples(spec), run.device, run.dist)
    n_samples = int(vals.pop("__samples"))
    if not math.isfinite(vals["loss"]):  # before the update: the weights stay finite
        raise TrainError(f"loss is {vals['loss']} at epoch {epoch + 1}, step {step + 1}; "
                         f"the last good checkpoint is in {run.checkpoints.path}")
    lrs = {n: opt.param_groups[0]["lr"] for n, opt in run.optimizers.items()}
    for opt in run.optimizers.values():
        opt.step()
    for sched in run.schedulers.values():
        sched.step()
    return vals, lrs, n_samples


def _train_epoch(run: _Run, state: TrainState, epoch: int, clock: _Clock) -> None:
    """The rest of `epoch` from `state.position` (0 unless resumed mid-epoch), then its checkpoint."""
    specs, cfg = run.plans[epoch], run.cfg
    epoch_clock = _Clock(state.epoch_elapsed, time.perf_counter())
    bar = tqdm(total=len(specs), initial=state.position, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
               disable=not (run.progress and run.dist.main), mininterval=1.0, dynamic_ncols=True)
    for pos in range(state.position, len(specs)):
        vals, lrs, n_samples = _train_step(run, epoch, state.step, specs[pos])
        state.record(pos + 1, n_samples, vals)
        state.elapsed, state.epoch_elapsed = clock.seconds(), epoch_clock.seconds()
        if state.step % cfg.log_every == 0 or pos + 1 == len(specs):
            run.losses.append(state, epoch + (pos + 1) / len(specs), lrs)
        bar.update(1)
        bar.set_postfix(loss=f"{vals['loss']:.4f}", lr=f"{next(iter(lrs.values())):.2e}", refresh=False)
        every = cfg.checkpoint_every_steps
        if every and state.step % every == 0 and pos + 1 < len(specs):
            run.checkpoints.save(state)
    bar.close()
    state.last_epoch = means(state.epoch_sums)
    if run.dist.main:
        secs = state.epoch_elapsed
        log.info("epoch %d/%d: %s (%d steps, %.1f s, %.1f samples/s)", epoch + 1, cfg.epochs,
                 " ".join(f"{k} {v:.4f}" for k, v in sorted(state.last_epoch.items())), len(specs), secs,
                 state.epoch_samples / secs if secs > 0 else float("nan"))
    if run.validation is not None:
        before = state.val_elapsed
        if validate(run.validation, run.model, run.dist, state, epoch):
            run.checkpoints.best = snapshot(run.model)
        if run.dist.main:
            write_val_tsv(run.checkpoints.out_dir / VAL, state.val_history)
        clock.start += state.val_elapsed - before   # training time leaves validation out
    state.next_epoch(epoch + 1)
    run.checkpoints.save(state)


# ------------------------------------------------------------------------------------ setup

def _use_cuda(device: str) -> bool:
    """CUDA when asked for, or for `auto` when present; asked for but absent is a TrainError."""
    try:
        return resolve_device(device).type == "cuda"
    except DeviceError as e:
        raise TrainError(str(e)) from None


def _remove_outputs(out_dir: Path) -> None:
    shutil.rmtree(out_dir / CHECKPOINT, ignore_errors=True)
    for name in (WEIGHTS, METRICS, LOSSES, VAL):
        (out_dir / name).unlink(missing_ok=True)


def _resume_or_start(ckpt: Checkpointer, cfg: TrainConfig, total: int) -> TrainState:
    """The state to go on from: the checkpoint's when it fits this run, else a fresh one (old outputs removed)."""
    d, out_dir = ckpt.dist, ckpt.out_dir
    if d.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt.recover_swap()
        clean_temporaries(out_dir)
        clean_temporaries(out_dir / LOSSES.parent)
    resume, reason = ckpt.decide()
    state = TrainState()
    if resume:
        state = ckpt.restore()
        if d.main:
            trim_losses(out_dir / LOSSES, state.step)
            write_val_tsv(out_dir / VAL, state.val_history)   # drops an epoch validated after the checkpoint
            log.info("resuming from %s: epoch %d/%d, batch %d, step %d of %d", ckpt.path,
                     state.epoch + 1, cfg.epochs, state.position, state.step, total)
    elif d.main:
        _remove_outputs(out_dir)
        log.info("starting fresh in %s (%s)", out_dir, reason)
    d.barrier()
    return state


def _finish(run: _Run, state: TrainState, out_dir: Path) -> dict[str, Any]:
    """The kept weights into the model; metrics.json and model.pt (rank 0); every rank returns the metrics."""
    kept = run.validation.kept_epoch(state) if run.validation is not None else None
    if kept is not None and kept == state.best_epoch and run.checkpoints.best is not None:
        run.model.load_state_dict(run.checkpoints.best)
    metrics = run_metrics(state, run.cfg.epochs, run.dist.world, kept)
    if run.dist.main:
        with atomic_path(out_dir / WEIGHTS) as tmp:
            torch.save(cpu_state(run.model), tmp)
        write_json(out_dir / METRICS, metrics)
        log.info("wrote %s and %s", out_dir / WEIGHTS, out_dir / METRICS)
    run.dist.barrier()
    return metrics


# -------------------------------------------------------------------------------------- fit

def fit(model: nn.Module, groups: Sequence[OptimGroup], plan: Callable[[int], list[Any]],
        collate: Callable[[Any], Any], cfg: TrainConfig, out_dir: str | os.PathLike, progress: bool = True,
        *, fingerprint: str = "", validation: Validation | None = None) -> dict[str, Any]:
    """Train `model` for cfg.epochs (resuming from out_dir/checkpoint when it fits); return metrics.json.
    With `validation`, the model is scored after every epoch and ends holding the kept epoch's weights."""
    use_cuda = _use_cuda(cfg.device)
    d = Dist.setup(use_cuda)
    try:
        return _fit(model, list(groups), plan, collate, cfg, Path(out_dir), progress, fingerprint, d,
                    d.device(use_cuda), validation)
    finally:
        d.teardown()


def _fit(model: nn.Module, groups: list[OptimGroup], plan: Callable[[int], list[Any]], collate: Callable[[Any], Any],
         cfg: TrainConfig, out_dir: Path, progress: bool, fingerprint: str, d: Dist,
         device: torch.device, validation: Validation | None) -> dict[str, Any]:
    check_groups(model, groups)
    set_requires_grad(groups)
    model.to(device)
    trainable = trainable_groups(groups)
    plans = [d.share(plan(e)) for e in range(cfg.epochs)]
    empty = [e for e, p in enumerate(plans) if not p]
    if empty:
        raise TrainError(f"epochs {empty} have no batches for world size {d.world}")
    total = sum(len(p) for p in plans)
    optimizers = {g.name: make_optimizer(g) for g in trainable}
    schedulers = make_schedulers(optimizers, total, cfg)
    signature = run_signature(cfg, groups, plans, d.world, validation.signature() if validation else None)
    meta = {"fingerprint": fingerprint, "signature": signature,
            "groups": list(optimizers), "total_steps": total, "torch": torch.__version__}
    ckpt = Checkpointer(out_dir, d, meta, model, optimizers, schedulers)
    state = _resume_or_start(ckpt, cfg, total)
    if d.main:
        log.info("training %d steps (%d epochs) on %s, world size %d; groups: %s", total, cfg.epochs, device, d.world,
                 ", ".join(f"{g.name}[{'frozen' if g.frozen else g.optimizer}, {g.describe()['numel']:,}]"
                           for g in groups))
    net = d.wrap(model, device, cfg.find_unused_parameters)  # after the resume: DDP broadcasts rank 0's weights
    model.train()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (cfg.bf16 and device.type == "cuda") \
        else contextlib.nullcontext()
    run = _Run(cfg=cfg, dist=d, device=device, model=model, net=net, params=[p for g in trainable for p in g.params],
               plans=plans, optimizers=optimizers, schedulers=schedulers, checkpoints=ckpt,
               losses=LossesTsv(out_dir / LOSSES, d.main), collate=collate, autocast=autocast, progress=progress,
               validation=validation)
    clock = _Clock(state.elapsed, time.perf_counter())
    for epoch in range(state.epoch, cfg.epochs):
        _train_epoch(run, state, epoch, clock)
    return _finish(run, state, out_dir)


__all__ = ["CHECKPOINT", "LOSSES", "METRICS", "VAL", "WEIGHTS", "CheckpointError", "OptimGroup", "TrainConfig",
           "TrainError", "Validation", "fit", "load_weights", "lr_factor", "step_seed", "to_device"]
