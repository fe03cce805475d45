"""Stage `finetune@<task>`: the pretrained GSHN finetuned on VQA, VE, NLVR2 or image-text retrieval.

`python -m stages.finetune --task vqa` trains, for every dataset of `finetune.<task>.datasets`:
- vqa / ve / nlvr2: `model/` = the pretrained visual encoder + transformer + a task head
  (models/downstream.py; its input is `finetune.<task>.pool`), and `blind/` = the same transformer
  and head without visual tokens (the text-only baseline, trained the same way so every number
  has context);
- itr: `model/` = the pretrained GSHN trained further with ITC + ITM on the retrieval train split.
These trainings are independent: `finetune.workers` processes run them side by side (results never
depend on it; under torchrun they run in turn). Each model folder is a stages.training.trainer output
(model.pt, checkpoint/ for resume, metrics.json, plots/losses.tsv, plots/val.tsv). After every epoch
the model is scored on the dataset's val split (up to `finetune.val.max_samples` samples): mean loss
and accuracy (VQA: the soft score of the arg-max answer), itr: ITC Recall@1 both ways; model.pt is
the best val epoch's weights (`finetune.val.keep: best`) or the last's. A dataset without a val
split keeps its last epoch (warned). `meta.json` beside them records what evaluation must match: the
model preset and size, feature shape, and the answer vocabulary (VQA) or labels, so an incompatible
checkpoint is refused with a clear message instead of a shape error deep in torch.

At the end, each training's logs are copied to the git-tracked plots/finetune/<task>/
(`<dataset>-<variant>.tsv` per step, `<dataset>-<variant>-val.tsv` per epoch), which experiments carry.
Folders of datasets no longer in the task's list stay under data/finetune/<task>/ (and are resumed,
not retrained, when the dataset comes back); delete one by hand to free its space.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.downstream import TaskModel
from models.gshn import GSHN
from stages.common import params, paths
from stages.common.cli import TASK, StageError, progress_enabled, run_stage, set_threads, setup_logging
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.model_factory import initial_model, optim_groups, resolved_knobs
from stages.common.params import ExecutorParams
from stages.common.weights import CheckpointError
from stages.data.pairs import PairCollator, Samples, feature_meta, load_samples, normalise_caption, random_plan
from stages.data.tasks import TaskCollator, TaskData, image_batches, load_task
from stages.evaluation.itm import Scorer
from stages.evaluation.metrics import recall_at_k
from stages.evaluation.vqa_answers import build_vocab
from stages.jobs.executors import run_jobs
from stages.training import trainer
from stages.training.metrics_log import shifted_log
from storage.atomic import atomic_dir, write_json
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
    return {"task": task, "dataset": dataset, "preset": mcfg.preset, "knobs": resolved_knobs(mcfg), "size": mcfg.size,
            "channels": C,
            "max_nodes": K, "max_text_len": mcfg.max_text_len, **extra}


def _fit(model: torch.nn.Module, groups: list[trainer.OptimGroup], plan: Any, collate: Any, epochs: int,
         fcfg: params.FinetuneParams, out: Path, fingerprint: str,
         validation: trainer.Validation | None) -> dict[str, Any]:
    cfg = trainer.TrainConfig(epochs=epochs, warmup_ratio=fcfg.warmup_ratio, grad_clip=fcfg.grad_clip,
                              seed=fcfg.seed, device=fcfg.device, find_unused_parameters=True)
    return trainer.fit(model, groups, plan, collate, cfg, out, progress=progress_enabled(), fingerprint=fingerprint,
                       validation=validation)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class ClassifierScore:
    """A classifier's mean loss and accuracy (VQA: soft score of the arg-max answer) over the first val
    samples (whole images in table order, so every epoch scores the same ones)."""

    def __init__(self, data: TaskData, collate: TaskCollator, batch_size: int, limit: int | None) -> None:
        self.collate, self.batches = collate, image_batches(data, batch_size, seed=None, limit=limit)

    def close(self) -> None:
        self.collate.close()

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        sums: dict[str, float] = {}
        for idx in self.batches:
            for k, v in model(trainer.to_device(self.collate(idx), _device(model))).items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx)   # batch means -> sample sums
        n = sum(len(b) for b in self.batches)
        return {k: v / n for k, v in sums.items()}


class RetrievalScore:
    """ITC Recall@1 both ways over the first val images (caption 0 each; captions that are the same text
    count as hits, as in pretraining's held-out metric)."""

    def __init__(self, val: Samples, K: int, max_text_len: int, batch_size: int) -> None:
        self.val, self.K, self.max_len, self.bs = val, K, max_text_len, batch_size
        by_text: dict[str, set[int]] = {}
        for i, c in enumerate(val.captions):
            by_text.setdefault(normalise_caption(c[0]), set()).add(i)
        self.gt = [by_text[normalise_caption(c[0])] for c in val.captions]

    def __call__(self, model: GSHN) -> dict[str, float]:
        scorer = Scorer(model, self.val, self.K, self.max_len, self.bs, _device(model), progress=False)
        img, txt = scorer.embed()
        scorer.close()
        sim = img @ txt.T
        i2t, t2i = recall_at_k(sim, self.gt, (1,))[1], recall_at_k(sim.T, self.gt, (1,))[1]
        return {"itc_r1_i2t": i2t, "itc_r1_t2i": t2i, "itc_r1": (i2t + t2i) / 2}


def _val_split(where: str, load: Any) -> Any:
    """`load()`'s val samples, or None (warned: the last epoch is kept) where the dataset has none."""
    try:
        return load()
    except StageError as e:
        log.warning("%s: no validation, the last epoch is kept (%s)", where, e)
        return None


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
    val = _val_split(f"{task}/{dataset}", lambda: load_task(task, dataset, "val"))
    score = None if val is None else ClassifierScore(val, TaskCollator(val, K, mcfg.max_text_len, vocab, blind),
                                                     tp.batch_size, fcfg.val.max_samples)
    fp = digest(fingerprint, variant, extra)
    result = _fit(model, optim_groups(model.parameter_groups(), tp), plan, collate, epochs, fcfg,
                  paths.finetune_run(task, dataset, variant), fp,
                  None if score is None else trainer.Validation(score, "acc", keep=fcfg.val.keep))
    collate.close()
    if score is not None:
        score.close()
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
    val = _val_split(f"itr/{dataset}", lambda: load_samples([dataset], "val"))
    if val is not None and fcfg.val.max_samples is not None:
        val = val.subset(list(range(min(fcfg.val.max_samples, len(val)))))
    validation = None if val is None else trainer.Validation(RetrievalScore(val, K, mcfg.max_text_len, tp.batch_size),
                                                             "itc_r1", keep=fcfg.val.keep)
    result = _fit(model, optim_groups(model.parameter_groups(), tp), plan, collate, tp.epochs, fcfg,
                  paths.finetune_run("itr", dataset, "model"), fingerprint, validation)
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
    _log_kept(task, tp.datasets)
    jobs = []
    for ds in tp.datasets:
        feature_meta([ds])  # a clear error when a dataset has no features yet
        pretrained = paths.pretrained_weights()
        start = file_digest(pretrained) if fcfg.init == "pretrained" and pretrained.is_file() else fcfg.init
        # the list of datasets is left out: adding or dropping one never retrains another
        fp = digest(mcfg.model_dump(), tp.model_dump(exclude={"datasets"}), fcfg.warmup_ratio, fcfg.grad_clip,
                    fcfg.seed, fcfg.val.max_samples, task, ds, code_digest("stages.finetune"), start,
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
    if int(os.environ.get("RANK", "0")) == 0:
        write_plots(task, [(job.dataset, job.variant) for job in jobs])
    return {ds: out[ds] for ds in tp.datasets}


def _log_kept(task: str, datasets: list[str]) -> None:
    root = paths.finetune_dir(task)
    kept = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in datasets) if root.is_dir() else []
    if kept:
        log.info("%s: %s not in finetune.%s.datasets: left in %s as they are", task, ", ".join(kept), task, root)


def write_plots(task: str, runs: list[tuple[str, str]]) -> None:
    """plots/finetune/<task>/, git-tracked and swapped in whole: each (dataset, variant) training's logs."""
    with atomic_dir(paths.finetune_plots(task)) as tmp:
        for ds, variant in runs:
            src = paths.finetune_run(task, ds, variant)
            for log_name, val in ((trainer.LOSSES, False), (trainer.VAL, True)):
                if (src / log_name).is_file():
                    (tmp / paths.finetune_plot(task, ds, variant, val).name).write_text(shifted_log(src / log_name))


def main(argv: list[str] | None = None) -> None:
    run_stage("finetune", __doc__, run, argv, TASK, (trainer.TrainError, CheckpointError))


if __name__ == "__main__":
    main()
