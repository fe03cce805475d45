"""Where a run stands: step, place in the schedule, running metric sums; what state.json holds besides tensors."""
from __future__ import annotations

from dataclasses import dataclass, field


def add(sums: dict[str, list[float]], values: dict[str, float]) -> None:
    """Add one step's values to running [sum, count] pairs."""
    for k, v in values.items():
        s = sums.setdefault(k, [0.0, 0])
        s[0] += v
        s[1] += 1


def means(sums: dict[str, list[float]]) -> dict[str, float]:
    return {k: s / n for k, (s, n) in sums.items() if n}


@dataclass
class TrainState:
    """Everything besides tensors that a checkpoint holds (state.json); the field order is that file's."""

    step: int = 0                # optimizer steps done
    epoch: int = 0               # epoch of the next step
    position: int = 0            # index of the next spec in this rank's share of plan(epoch)
    samples: int = 0             # samples trained on, all ranks
    elapsed: float = 0.0         # seconds of training (time lost to a kill is not counted)
    epoch_sums: dict[str, list[float]] = field(default_factory=dict)   # key -> [sum, count] this epoch
    window_sums: dict[str, list[float]] = field(default_factory=dict)  # since the last losses.tsv row
    epoch_samples: int = 0
    epoch_elapsed: float = 0.0
    last_epoch: dict[str, float] = field(default_factory=dict)         # means of the last finished epoch
    columns: list[str] | None = None                                   # losses.tsv header
    val_history: list[dict[str, float]] = field(default_factory=list)  # per validated epoch: epoch, step, val_*
    best_epoch: int | None = None                                      # 1-based epoch of the best validation
    val_elapsed: float = 0.0                                           # seconds spent validating

    def record(self, position: int, samples: int, values: dict[str, float]) -> None:
        """One optimizer step done: the next spec is `position`; `samples` and `values` over all ranks."""
        self.step += 1
        self.position = position
        self.samples += samples
        self.epoch_samples += samples
        add(self.epoch_sums, values)
        add(self.window_sums, values)

    def take_window(self) -> dict[str, float]:
        """Means since the last losses.tsv row; the window restarts."""
        window = means(self.window_sums)
        self.window_sums = {}
        return window

    def next_epoch(self, epoch: int) -> None:
        """The per-epoch counters restart at the first step of `epoch` (`last_epoch` is set by the caller)."""
        self.epoch, self.position = epoch, 0
        self.epoch_sums, self.epoch_samples, self.epoch_elapsed = {}, 0, 0.0
