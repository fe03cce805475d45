"""Where each stage's artifacts live under data/ (DESIGN.md section 4): the one definition of every
artifact path. `tests/stages/common/test_paths.py` checks that `dvc.yaml`'s deps and outs agree."""
from __future__ import annotations

from pathlib import Path

DATA = Path("data")
HEADLINES = Path("metrics")        # git-tracked: what `dvc exp show` compares (stages.common.headline)
PLOTS = Path("plots")              # git-tracked copies of the training logs: what `dvc plots diff` compares
WEIGHTS = "model.pt"               # a training's final weights-only state dict, inside its folder
TASKS = ("vqa", "ve", "nlvr2", "itr")
PRETRAIN_PHASES = {"warmup": "pretrain_warmup", "main": "pretrain"}   # --phase -> stage name
VARIANTS = ("model", "blind")      # a classification task's model and its text-only baseline (itr: model only)
CONSUMERS = ("pretrain", *TASKS, "report")   # what reads datasets, each through its selection (stages.select)


def inputs_manifest(dataset: str) -> Path:
    """What `prepare@<dataset>` reads from outside the project: sizes, mtimes, digests (stages.inputs)."""
    return DATA / "inputs" / f"{dataset}.json"


def prepared(dataset: str) -> Path:
    return DATA / "prepared" / dataset


def ground_truth(dataset: str) -> Path:
    """Ground-truth segments of a prepared dataset (<image_id>.png + .json), where it has them (scenes)."""
    return prepared(dataset) / "gt"


def masks(dataset: str) -> Path:
    return DATA / "masks" / dataset


def masks_meta(dataset: str) -> Path:
    return masks(dataset) / "meta.json"


def features(dataset: str) -> Path:
    return DATA / "features" / dataset


def features_meta(dataset: str) -> Path:
    return features(dataset) / "meta.json"


def dataset_digest(dataset: str) -> Path:
    """Content digests of a dataset's prepared, masks and features folders (stages.digest)."""
    return DATA / "digests" / f"{dataset}.json"


def selection(consumer: str) -> Path:
    """The digests of only the datasets `consumer` reads (stages.select): its DVC dep in their place."""
    return DATA / "select" / f"{consumer}.json"


def backbone_dir() -> Path:
    return DATA / "backbone"


def backbone_weights(arch: str) -> Path:
    return backbone_dir() / f"{arch}.pt"


def backbone_train_dir() -> Path:
    """The backbone's training run (stages.training.trainer output: the trunk with its heads)."""
    return backbone_dir() / "train"


def backbone_metrics() -> Path:
    return backbone_dir() / "metrics.json"


def pretrain_dir(phase: str) -> Path:
    """Checkpoints, metrics and eval of a pretraining phase: `warmup` or `main`."""
    return DATA / "checkpoints" / PRETRAIN_PHASES[phase]


def pretrained_weights(phase: str = "main") -> Path:
    return pretrain_dir(phase) / WEIGHTS


def pretrain_eval(phase: str) -> Path:
    return pretrain_dir(phase) / "eval.json"


def reorder_dir() -> Path:
    return DATA / "reorder"


def reorder_batches() -> Path:
    return reorder_dir() / "batches.parquet"


def reorder_metrics() -> Path:
    return reorder_dir() / "metrics.json"


def finetune_dir(task: str, dataset: str | None = None) -> Path:
    root = DATA / "finetune" / task
    return root if dataset is None else root / dataset


def finetune_run(task: str, dataset: str, variant: str) -> Path:
    """One finetuning (stages.training.trainer output): a dataset's `model` or its `blind` baseline."""
    return finetune_dir(task, dataset) / variant


def task_meta(task: str, dataset: str) -> Path:
    """What a task's finetuned models were built from (preset, feature shape, answers or labels)."""
    return finetune_dir(task, dataset) / "meta.json"


def evaluate_dir(task: str, dataset: str) -> Path:
    return DATA / "evaluate" / task / dataset


def evaluate_examples(task: str, dataset: str) -> Path:
    """A few predictions (retrieval: rankings) kept for the report."""
    return evaluate_dir(task, dataset) / "examples.json"


def task_metrics(task: str) -> Path:
    """Every figure of evaluate@<task>, per dataset (the headline numbers are `headline(task)`)."""
    return DATA / "evaluate" / task / "metrics.json"


def plot_log(name: str) -> Path:
    """A training stage's log as the experiments carry it: `backbone`, `pretrain_warmup`, `pretrain`."""
    return PLOTS / f"{name}.tsv"


def finetune_plots(task: str) -> Path:
    return PLOTS / "finetune" / task


def finetune_plot(task: str, dataset: str, variant: str, val: bool = False) -> Path:
    """One finetuning's log as the experiments carry it: per step, or per epoch on the val split (`val`)."""
    return finetune_plots(task) / f"{dataset}-{variant}{'-val' if val else ''}.tsv"


def headline(name: str) -> Path:
    """A stage's headline metrics: `backbone`, `pretrain_warmup`, `reorder`, `pretrain`, or a task."""
    return HEADLINES / f"{name}.json"


def report_dir() -> Path:
    return DATA / "report"
