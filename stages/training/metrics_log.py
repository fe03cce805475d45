"""What the loop logs: each step's values averaged over ranks, plots/losses.tsv as training goes, metrics.json.

- metrics.json: per-key means over the last epoch, steps, epochs, samples, wall_time_s,
  samples_per_s, world_size; a run that validates adds the kept epoch's val_* values, kept_epoch,
  best_epoch and val_wall_time_s (`validation.py`).
- plots/losses.tsv: step (optimizer steps done), epoch (fractional, completed epochs), lr/<group>
  for each trainable group (the lr used by that step), then each logged key averaged over the steps
  since the previous row; a row every `log_every` steps and at the end of each epoch
  Rows are appended as training goes (the one non-atomic write); on resume every row after the
  checkpoint's step, and a torn last line, are dropped by an atomic rewrite. It lives under the
  git-ignored data/ (it must survive a kill); each stage copies it to the git-tracked plots/ at its end
  (`shifted_log`), which `dvc plots show` / `dvc plots diff` read.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stages.training.config import TrainError
from stages.training.distributed import Dist
from stages.training.state import TrainState
from storage.atomic import atomic_path

log = logging.getLogger(__name__)

METRICS = "metrics.json"
LOSSES = Path("plots") / "losses.tsv"
RESERVED = ("steps", "epochs", "samples", "wall_time_s", "samples_per_s", "world_size", "kept_epoch", "best_epoch",
            "grad_norm")


def check_output(out: Any) -> None:
    """The model's output: a dict with a 'loss', no key that the trainer's own metrics use."""
    if not isinstance(out, dict) or "loss" not in out:
        raise TrainError(f"model.forward(batch) must return a dict with a 'loss' entry, got {type(out).__name__}")
    bad = [k for k in out if not isinstance(k, str) or k in RESERVED or k.startswith(("__", "val_"))]
    if bad:
        raise TrainError(f"model output keys {bad} are reserved for the trainer's own metrics")


def step_values(out: Any, extra: dict[str, Tensor], n: int, device: torch.device, d: Dist) -> dict[str, float]:
    """Logged values of one step, averaged over ranks; "__samples" is summed."""
    vals = {**out, **extra}
    keys = sorted(vals)
    parts = []
    for k in keys:
        v = vals[k]
        v = v.detach() if isinstance(v, Tensor) else torch.tensor(float(v))
        if v.numel() != 1:
            raise TrainError(f"model output {k!r} is not a scalar (shape {tuple(v.shape)})")
        parts.append(v.reshape(()).to(device=device, dtype=torch.float64))
    vec = torch.stack(parts + [torch.tensor(float(n), dtype=torch.float64, device=device)])
    if d.world > 1:  # one collective for all values: every rank returns the same keys
        d.sum_(vec)
        vec[:-1] /= d.world
    got = vec.tolist()
    return {**dict(zip(keys, got[:-1])), "__samples": got[-1]}


def _fmt(v: float) -> str:
    return f"{v:.8g}"


class LossesTsv:
    """plots/losses.tsv of one run: the header once (its columns are kept in the state), then a row per call."""

    def __init__(self, path: Path, write: bool) -> None:
        self.path = path
        self.write = write            # rank 0 writes; the others only restart their window
        self._warned: set[str] = set()

    def append(self, state: TrainState, epoch_frac: float, lrs: dict[str, float]) -> None:
        """A row at `state.step` with the means since the previous row (whose window restarts)."""
        means = state.take_window()
        if not self.write:
            return
        keys = ["loss"] + sorted(k for k in means if k not in ("loss", "grad_norm")) + \
            (["grad_norm"] if "grad_norm" in means else [])
        if state.columns is None:
            state.columns = ["step", "epoch"] + [f"lr/{n}" for n in lrs] + keys
        extra = set(keys) - set(state.columns) - self._warned
        if extra:
            log.warning("losses.tsv: keys %s appeared after the header was written; not plotted", sorted(extra))
            self._warned.update(extra)
        row = {"step": str(state.step), "epoch": f"{epoch_frac:.4f}", **{f"lr/{n}": _fmt(v) for n, v in lrs.items()},
               **{k: _fmt(v) for k, v in means.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh_file = not self.path.is_file() or self.path.stat().st_size == 0
        with open(self.path, "a") as fh:
            if fresh_file:
                fh.write("\t".join(state.columns) + "\n")
            fh.write("\t".join(row.get(c, "nan") for c in state.columns) + "\n")


def trim_losses(path: Path, step: int) -> None:
    """Keep the header and the rows up to `step`; drop later rows and a torn last line."""
    if not path.is_file():
        return
    lines = path.read_text().split("\n")
    if not lines or not lines[0]:
        path.unlink()
        return
    header, n_cols = lines[0], len(lines[0].split("\t"))
    keep = [header]
    for line in lines[1:-1]:  # the part after the last newline is empty or torn
        cells = line.split("\t")
        if len(cells) == n_cols and cells[0].isdigit() and int(cells[0]) <= step:
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(keep) + "\n")


def run_metrics(state: TrainState, epochs: int, world: int, kept_epoch: int | None = None) -> dict[str, Any]:
    """metrics.json: the last epoch's means and the run's totals; with validation, the kept epoch's values."""
    out = {**state.last_epoch, "steps": state.step, "epochs": epochs, "samples": state.samples,
           "wall_time_s": round(state.elapsed, 3),
           "samples_per_s": round(state.samples / state.elapsed, 3) if state.elapsed > 0 else None,
           "world_size": world}
    if kept_epoch is not None:
        kept = state.val_history[kept_epoch - 1]
        out |= {k: v for k, v in kept.items() if k.startswith("val_")}
        out |= {"kept_epoch": kept_epoch, "best_epoch": state.best_epoch,
                "val_wall_time_s": round(state.val_elapsed, 3)}
    return out


def shifted_log(path: Path, step_offset: int = 0) -> str:
    """A training log's text (losses.tsv, val.tsv) with its `step` column moved on by `step_offset`: the
    git-tracked copies under plots/ put phases one after another on one step axis."""
    lines = path.read_text().rstrip("\n").split("\n")
    col = lines[0].split("\t").index("step")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split("\t")
        cells[col] = str(int(cells[col]) + step_offset)
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"
