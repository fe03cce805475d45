"""Validation after every epoch: the validation curve (plots/val.tsv) and the epoch whose weights a run keeps.

The caller's `score(model)` runs with the model in eval mode and gradients off, and returns named numbers
(e.g. {"acc": ..., "loss": ...}), logged as val_<name>. `key` (one of those names) picks the best epoch (a
tie keeps the earlier one). Its weights are held in memory and written into every later checkpoint
(checkpoint/best.pt), so a killed run resumes with them; at the end model.pt holds the best epoch's weights
(`keep="best"`) or the last epoch's (`keep="last"`). Every rank scores; rank 0's values decide for all.

plots/val.tsv: a row per validated epoch (epoch, step, val_<name>...), rewritten whole from the run's state
after each validation and on resume, so it never holds an epoch the checkpoint has not seen.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from stages.training.config import TrainError
from stages.training.distributed import Dist
from stages.training.state import TrainState
from storage.atomic import atomic_path

log = logging.getLogger(__name__)

VAL = Path("plots") / "val.tsv"


@dataclass(frozen=True)
class Validation:
    """How a run is validated after each epoch, and which epoch's weights it keeps."""

    score: Callable[[nn.Module], dict[str, float]]   # the model (eval mode, no gradients) -> named numbers
    key: str                                          # the number that picks the best epoch
    higher_is_better: bool = True
    keep: Literal["best", "last"] = "best"           # model.pt: the best epoch's weights, or the last's

    def __post_init__(self) -> None:
        if self.keep not in ("best", "last"):
            raise TrainError(f"validation keep must be 'best' or 'last', got {self.keep!r}")

    def signature(self) -> dict[str, Any]:
        """What a resumed checkpoint must share (`keep` need not: it only picks what the end writes)."""
        return {"key": self.key, "higher_is_better": self.higher_is_better}

    def kept_epoch(self, state: TrainState) -> int | None:
        """1-based epoch whose weights the run ends with (None: nothing validated)."""
        if not state.val_history:
            return None
        return state.best_epoch if self.keep == "best" and state.best_epoch else state.val_history[-1]["epoch"]


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A CPU copy of the weights that later training steps do not change (`.cpu()` alone shares CPU storage)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _values(raw: Any, key: str) -> dict[str, float]:
    if not isinstance(raw, dict) or key not in raw:
        raise TrainError(f"validation score must return a dict with {key!r}, got {raw!r}")
    try:
        return {f"val_{k}": float(v) for k, v in sorted(raw.items())}
    except (TypeError, ValueError) as e:
        raise TrainError(f"validation values must be numbers, got {raw!r}") from e


def validate(validation: Validation, model: nn.Module, dist: Dist, state: TrainState, epoch: int) -> bool:
    """Score the model after 0-based `epoch` into `state`; True when this epoch is the best so far."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        raw = validation.score(model)
    model.train(was_training)
    values = _values(dist.broadcast(raw), validation.key)
    state.val_history.append({"epoch": epoch + 1, "step": state.step, **values})
    state.val_elapsed += time.perf_counter() - start
    value, name = values[f"val_{validation.key}"], f"val_{validation.key}"
    best = None if state.best_epoch is None else state.val_history[state.best_epoch - 1][name]
    improved = math.isfinite(value) and (best is None or (value > best if validation.higher_is_better
                                                          else value < best))
    if improved:
        state.best_epoch = epoch + 1
    if dist.main:
        log.info("epoch %d validation: %s (%.1f s); best: epoch %s", epoch + 1,
                 " ".join(f"{k} {v:.4f}" for k, v in values.items()), time.perf_counter() - start, state.best_epoch)
    return improved


def write_val_tsv(path: Path, history: list[dict[str, float]]) -> None:
    """plots/val.tsv from the validated epochs (removed when there are none)."""
    if not history:
        path.unlink(missing_ok=True)
        return
    columns = list(history[0])
    lines = ["\t".join(columns)] + ["\t".join(f"{row.get(c, float('nan')):.8g}" for c in columns)
                                    for row in history]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
