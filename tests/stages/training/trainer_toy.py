"""A toy model for the trainer tests, importable and runnable as a script (for SIGKILL and torchrun tests).

`python tests/stages/training/trainer_toy.py --out DIR [--kill collate:N | save:N] [--dump DIR] [--validate]` trains
the toy with `stages.training.trainer.fit`. --kill makes the process SIGKILL itself on the N-th collate call
(in the middle of a step) or on the N-th torch.save call (in the middle of writing a checkpoint).
--dump writes this rank's final weights and the list of file-system writes it made under --out
(seen by an audit hook) to DIR/rank<R>.pt and DIR/rank<R>-writes.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from stages.training.trainer import OptimGroup, TrainConfig, Validation, fit  # noqa: E402

N_SAMPLES, BATCH = 256, 16  # 16 steps per epoch


@dataclass
class Batch:
    x: Tensor
    y: Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.x.to(device), self.y.to(device))


class Toy(nn.Module):
    """Regression MLP with dropout; `embed` is the frozen group."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 1)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        pred = self.head(self.body(self.embed(batch.x))).squeeze(-1)
        return {"loss": F.mse_loss(pred, batch.y), "mae": (pred - batch.y).abs().mean()}


def _data() -> tuple[Tensor, Tensor]:
    """The training inputs and the weights of the function the toy learns (`_target`)."""
    g = torch.Generator().manual_seed(1234)
    X = torch.randn(N_SAMPLES, 8, generator=g)
    return X, torch.randn(8, generator=g)


def _target(X: Tensor, w: Tensor) -> Tensor:
    return X @ w + 0.3 * torch.sin(3 * X[:, 0])


def build(seed: int = 0):
    """(model, groups, plan, collate) of the toy; the same seed gives the same initial weights."""
    X, w = _data()
    Y = _target(X, w)
    torch.manual_seed(seed)
    model = Toy()
    groups = [OptimGroup("body", list(model.body.parameters()), "adamw", lr=3e-3, weight_decay=1e-2),
              OptimGroup("head", list(model.head.parameters()), "sgd", lr=1e-2, momentum=0.9, weight_decay=0.0),
              OptimGroup("embed", list(model.embed.parameters()), frozen=True)]

    def plan(epoch: int) -> list[list[int]]:
        perm = torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(100 + epoch)).tolist()
        return [perm[i: i + BATCH] for i in range(0, N_SAMPLES, BATCH)]

    def collate(spec: list[int]) -> Batch:
        idx = torch.tensor(spec)
        return Batch(X[idx] + 0.01 * torch.randn(len(spec), 8), Y[idx])  # input noise: RNG used in collate

    return model, groups, plan, collate


def validation(keep: str = "best") -> Validation:
    """MSE on 64 held-out samples whose targets are sign-reversed: the better the fit, the worse this
    score, so the best epoch is an early one and model.pt differs from the last epoch's weights."""
    X = torch.randn(64, 8, generator=torch.Generator().manual_seed(4321))
    Y = -_target(X, _data()[1])

    def score(model: Toy) -> dict[str, float]:
        pred = model.head(model.body(model.embed(X))).squeeze(-1)
        return {"mse": float(F.mse_loss(pred, Y)), "mae": float((pred - Y).abs().mean())}

    return Validation(score, "mse", higher_is_better=False, keep=keep)


def config(**kw) -> TrainConfig:
    base = dict(epochs=3, warmup_ratio=0.2, min_lr_ratio=0.05, seed=7, device="cpu", log_every=1)
    return TrainConfig(**(base | kw))


def _audit(root: Path, writes: list[str]):
    """An audit hook recording every creating/modifying file-system call under `root`."""
    root_s = str(root.resolve())
    events = {"open", "os.rename", "os.replace", "os.remove", "os.unlink", "os.mkdir", "os.rmdir", "os.truncate",
              "shutil.rmtree", "shutil.move", "tempfile.mkstemp", "tempfile.mkdtemp"}
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        if event not in events:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & write_flags)
            paths = [path] if writing else []
        else:
            paths = list(args[:2]) if event in ("os.rename", "os.replace", "shutil.move") else list(args[:1])
        for p in paths:
            if isinstance(p, (str, bytes, os.PathLike)):
                full = os.path.abspath(os.fsdecode(p))
                if full.startswith(root_s):
                    writes.append(f"{event} {full}")

    return hook


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fingerprint", default="toy")
    ap.add_argument("--checkpoint-every", type=int, default=None)
    ap.add_argument("--log-every", type=int, default=1)
    ap.add_argument("--kill", default=None, help="collate:N or save:N")
    ap.add_argument("--dump", type=Path, default=None)
    ap.add_argument("--validate", action="store_true", help="score after every epoch, keep the best")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model, groups, plan, collate = build(args.seed)

    if args.kill:
        kind, n = args.kill.split(":")
        calls = {"n": 0}

        def counting(fn):
            def wrapped(*a, **kw):
                calls["n"] += 1
                if calls["n"] == int(n):
                    os.kill(os.getpid(), signal.SIGKILL)
                return fn(*a, **kw)
            return wrapped

        if kind == "collate":
            collate = counting(collate)
        else:
            torch.save = counting(torch.save)

    rank = int(os.environ.get("RANK", "0"))
    writes: list[str] = []
    if args.dump:
        sys.addaudithook(_audit(args.out, writes))
    cfg = config(epochs=args.epochs, seed=args.seed, checkpoint_every_steps=args.checkpoint_every,
                 log_every=args.log_every)
    metrics = fit(model, groups, plan, collate, cfg, args.out, progress=False, fingerprint=args.fingerprint,
                  validation=validation() if args.validate else None)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), args.dump / f"rank{rank}.pt")
        (args.dump / f"rank{rank}-writes.json").write_text(json.dumps({"writes": writes, "metrics": metrics}))


if __name__ == "__main__":
    main()
