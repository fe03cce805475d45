"""Stage `finetune@<task>`: the pretrained GSHN finetuned on VQA, VE, NLVR2 or image-text retrieval.

`python -m stages.finetune --task vqa` trains, for every dataset of `finetune.<task>.datasets`:
- vqa / ve / nlvr2: `model/` = the pretrained visual encoder + transformer + a task head
  (models/downstream.py; its input is `finetune.<task>.pool`), and `blind/` = the same transformer
  and head without visual tokens (the text-only baseline, trained the same way so every number
  has context);
- itr: `model/` = the pretrained GSHN trained further with ITC + ITM on the retrieval train split.
These trainings are independent: `finetune.workers` processes run them side by side (results never
depend on it; under torchrun they run in turn). Each model folder is a stages.training.trainer output
(model.pt, checkpoint/ for resume, metrics.json, plots/losses.tsv). `meta.json` beside them
records what evaluation must match: the model preset and size, feature shape, and the answer
vocabulary (VQA) or labels, so an incompatible checkpoint is refused with a clear message instead
of a shape error deep in torch.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.downstream import TaskModel
from stages.common import params, paths
from stages.common.cli import TASK, StageError, progress_enabled, run_stage, set_threads, setup_logging
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.model_factory import initial_model, optim_groups
from stages.common.params import ExecutorParams
from stages.common.weights import CheckpointError
from stages.data.pairs import PairCollator, feature_meta, load_samples, random_plan
from stages.data.tasks import TaskCollator, TaskData, image_batches, load_task
from stages.evaluation.vqa_answers import build_vocab
from stages.jobs.executors import run_jobs
from stages.training import trainer
from storage.atomic import write_json
from storage.shards import INDEX_NAME
from storage.tables import VE_LABELS

log = logging.getLogger("stages.finetune")


def outputs(task: str, dataset: str, n_answers: int | None = None) -> int:
    """Head outputs of a classification task (VQA: the answer vocabulary)."""
    if task == "vqa":
        if not n_answers or n_answers < 2:
            raise StageError(f"{dataset}: the VQA answer vocabulary has {n_answers or 0} answers; need >= 2 "
                             f"(lower finetune.vqa.min_answer_count?)")
        return n_answers
    return len(VE_LABELS) if task == "ve" else 2


def meta(task: str, dataset: str, mcfg: params.ModelParams, C: int, K: int, **extra: Any) -> dict[str, Any]:
    return {"task": task, "dataset": dataset, "preset": mcfg.preset, "size": mcfg.size, "channels": C,
            "max_nodes": K, "max_text_len": mcfg.max_text_len, **extra}


def _fit(model: torch.nn.Module, groups: list[trainer.OptimGroup], plan: Any, collate: Any, epochs: int,
         fcfg: params.FinetuneParams, out: Path, fingerprint: str) -> dict[str, Any]:
    cfg = trainer.TrainConfig(epochs=epochs, warmup_ratio=fcfg.warmup_ratio, grad_clip=fcfg.grad_clip,
                              seed=fcfg.seed, device=fcfg.device, find_unused_parameters=True)
    return trainer.fit(model, groups, plan, collate, cfg, out, progress=progress_enabled(), fingerprint=fingerprint)


@dataclass(frozen=True)
class Job:
    """One training of the stage: a dataset's model or its blind baseline (itr: the model only)."""

    task: str
    dataset: str
    variant: str         # model | blind
    fingerprint: str     # params, code and inputs of the dataset (stages.training.trainer resumes only on a match)
    threads: int | None  # CPU threads of the training's process


def train_job(job: Job) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runs one Job, in this process or in a worker (finetune.workers > 1: params are read again
    there). Returns the trainer's metrics and the dataset's meta.json contents."""
    setup_logging()
    mcfg: params.ModelParams = params.load("model")
    fcfg: params.FinetuneParams = params.load("finetune")
    set_threads(job.threads)
    if job.task == "itr":
        return finetune_itr(job.dataset, mcfg, fcfg, job.fingerprint)
    return finetune_classifier(job.task, job.dataset, job.variant, mcfg, fcfg, job.fingerprint)


def finetune_classifier(task: str, dataset: str, variant: str, mcfg: params.ModelParams,
                        fcfg: params.FinetuneParams, fingerprint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    tp: params.TaskParams = getattr(fcfg, task)
    C, K = feature_meta([dataset])
    train: TaskData = load_task(task, dataset, "train")
    extra: dict[str, Any] = {}
    vocab = None
    if task == "vqa":
        answers = build_vocab(train.labels, tp.min_answer_count)
        vocab = {a: i for i, a in enumerate(answers)}
        extra["answers"] = answers
    else:
        extra["labels"] = list(VE_LABELS) if task == "ve" else ["false", "true"]
    n_out = outputs(task, dataset, len(vocab) if vocab is not None else None)
    blind = variant == "blind"
    epochs = tp.blind_epochs if blind else tp.epochs
    log.info("%s/%s: training %s (%d epochs) on %d train samples (%d without features)%s", task, dataset,
             "the blind baseline" if blind else "the model", epochs, len(train), train.missing,
             f", {n_out} answers" if vocab is not None else "")
    torch.manual_seed(fcfg.seed)
    model = TaskModel.from_pretrained(initial_model(mcfg, C, K, fcfg.init), task, n_out, blind, mcfg.dropout, tp.pool)

    def plan(epoch: int) -> list[list[int]]:
        return image_batches(train, tp.batch_size, fcfg.seed, epoch, tp.max_samples)
    collate = TaskCollator(train, K, mcfg.max_text_len, vocab, blind)
    fp = digest(fingerprint, variant, extra)
    result = _fit(model, optim_groups(model.parameter_groups(), tp), plan, collate, epochs, fcfg,
                  paths.finetune_run(task, dataset, variant), fp)
    collate.close()
    return result, meta(task, dataset, mcfg, C, K, n_out=n_out, pool=tp.pool, init=fcfg.init,
                        train_samples=len(train),
                        train_missing=train.missing, **extra)


def finetune_itr(dataset: str, mcfg: params.ModelParams, fcfg: params.FinetuneParams,
                 fingerprint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    tp = fcfg.itr
    C, K = feature_meta([dataset])
    train = load_samples([dataset], "train")
    torch.manual_seed(fcfg.seed)
    model = initial_model(mcfg, C, K, fcfg.init)
    model.set_objectives(("itc", "itm"))
    model.freeze_snn(False)
    steps = None if tp.max_samples is None else max(1, tp.max_samples // tp.batch_size)

    def plan(epoch: int) -> list:
        return random_plan(train, tp.batch_size, fcfg.seed, epoch)[:steps]
    collate = PairCollator(train, K, mcfg.max_text_len)
    log.info("itr/%s: %d train images (%d captions without features), ITC + ITM", dataset, len(train), train.missing)
    result = _fit(model, optim_groups(model.parameter_groups(), tp), plan, collate, tp.epochs, fcfg,
                  paths.finetune_run("itr", dataset, "model"), fingerprint)
    collate.close()
    return result, meta("itr", dataset, mcfg, C, K, init=fcfg.init, train_images=len(train),
                        train_missing=train.missing)


def run(task: str) -> dict[str, Any]:
    if task not in paths.TASKS:
        raise StageError(f"unknown task {task!r}; known: {', '.join(paths.TASKS)}")
    mcfg: params.ModelParams = params.load("model")
    fcfg: params.FinetuneParams = params.load("finetune")
    tp: params.TaskParams = getattr(fcfg, task)
    absent = [d for d in tp.datasets if d not in params.datasets()]
    if absent:
        raise StageError(f"finetune.{task}.datasets lists {absent}, which params.yaml `datasets` does not prepare")
    root = paths.finetune_dir(task)
    if root.is_dir():  # datasets dropped from the task's list leave nothing behind
        for stale in [p for p in root.iterdir() if p.is_dir() and p.name not in tp.datasets]:
            shutil.rmtree(stale)
    jobs = []
    for ds in tp.datasets:
        feature_meta([ds])  # a clear error when a dataset has no features yet
        pretrained = paths.pretrained_weights()
        start = file_digest(pretrained) if fcfg.init == "pretrained" and pretrained.is_file() else fcfg.init
        fp = digest(mcfg.model_dump(), tp.model_dump(), fcfg.warmup_ratio, fcfg.grad_clip, fcfg.seed, task, ds,
                    code_digest("stages.finetune"), start,
                    file_digest(paths.features(ds) / INDEX_NAME))
        jobs += [(ds, v, fp) for v in (paths.VARIANTS[:1] if task == "itr" else paths.VARIANTS)]
    # DDP ranks (torchrun) run the trainings in turn. Processes are counted in model trainings: a
    # blind one (text only, no visual pass) is short, so it runs after a model, not beside it on a core
    # left idle once it ends; fewer processes than workers get the spare threads.
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    workers = 1 if ddp else max(1, min(fcfg.workers, sum(v == "model" for _, v, _ in jobs)))
    threads = fcfg.threads
    if threads and not ddp and workers < fcfg.workers:
        threads *= fcfg.workers // workers
    log.info("%s: %d training(s) in %d process(es) of %s thread(s)", task, len(jobs), workers,
             threads or "torch's default")
    # Models first: they see images, so they take longest.
    jobs = sorted((Job(task, ds, v, fp, threads) for ds, v, fp in jobs), key=lambda j: j.variant != "model")
    out: dict[str, dict[str, Any]] = {}
    metas: dict[str, dict[str, Any]] = {}
    for job, (result, job_meta) in run_jobs(train_job, jobs, ExecutorParams(executor="process", workers=workers)):
        out.setdefault(job.dataset, {})[job.variant] = result
        metas[job.dataset] = job_meta
    for ds in tp.datasets:
        write_json(paths.task_meta(task, ds), metas[ds])
    return {ds: out[ds] for ds in tp.datasets}


def main(argv: list[str] | None = None) -> None:
    run_stage("finetune", __doc__, run, argv, TASK, (trainer.TrainError, CheckpointError))


if __name__ == "__main__":
    main()
