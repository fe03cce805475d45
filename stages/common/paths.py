"""Where each stage's artifacts live under data/ (DESIGN.md section 4): the one definition of every
artifact path. `tests/stages/common/test_paths.py` checks that `dvc.yaml`'s deps and outs agree."""
from __future__ import annotations

from pathlib import Path

DATA = Path("data")
WEIGHTS = "model.pt"               # a training's final weights-only state dict, inside its folder
TASKS = ("vqa", "ve", "nlvr2", "itr")
PRETRAIN_PHASES = {"warmup": "pretrain_warmup", "main": "pretrain"}   # --phase -> stage name
TASK_META = "meta.json"            # what a task's finetuned model was built from (per dataset)


def prepared(dataset: str) -> Path:
    return DATA / "prepared" / dataset


def masks(dataset: str) -> Path:
    return DATA / "masks" / dataset


def features(dataset: str) -> Path:
    return DATA / "features" / dataset


def backbone_dir() -> Path:
    return DATA / "backbone"


def backbone_weights(arch: str) -> Path:
    return backbone_dir() / f"{arch}.pt"


def pretrain_dir(phase: str) -> Path:
    """Checkpoints, metrics and eval of a pretraining phase: `warmup` or `main`."""
    return DATA / "checkpoints" / PRETRAIN_PHASES[phase]


def pretrained_weights(phase: str = "main") -> Path:
    return pretrain_dir(phase) / WEIGHTS


def reorder_dir() -> Path:
    return DATA / "reorder"


def reorder_batches() -> Path:
    return reorder_dir() / "batches.parquet"


def finetune_dir(task: str, dataset: str | None = None) -> Path:
    root = DATA / "finetune" / task
    return root if dataset is None else root / dataset


def evaluate_dir(task: str, dataset: str) -> Path:
    return DATA / "evaluate" / task / dataset


def task_metrics(task: str) -> Path:
    return DATA / "metrics" / f"{task}.json"


def report_dir() -> Path:
    return DATA / "report"
