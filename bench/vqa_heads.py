"""Benchmark: how fast each downstream head input learns easy_vqa, per question kind.

Finetunes the `pretrain` checkpoint on easy_vqa's train split with `finetune.vqa`'s optimiser
settings (AdamW `lr`, SGD for the SNN, the trainer's warm-up + cosine schedule, `batch_size`), once
per `--pools` value (models/downstream.py: product, joint, text), and scores the validation split
every `--eval-every` steps by question kind: colour / shape questions ("what color is the
shape?") and yes/no questions about a colour or a shape ("is there a red shape?"). The yes/no
colour questions are the ones that need the question matched against the image.

Needs the outputs of `dvc repro pretrain features@easy_vqa` in the working directory.

    python bench/vqa_heads.py [--pools product joint] [--steps 1000] [--eval-every 200]

Writes bench/results/vqa_heads.json (override with --out).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PROGRESS", "0")

import torch  # noqa: E402

from models.downstream import TaskModel  # noqa: E402
from stages.common import params  # noqa: E402
from stages.common.model_factory import load_pretrained  # noqa: E402
from stages.data.pairs import feature_meta  # noqa: E402
from stages.data.tasks import TaskCollator, TaskData, image_batches, load_task  # noqa: E402
from stages.evaluation.vqa_answers import accuracy, build_vocab  # noqa: E402
from stages.training.trainer import TrainConfig, lr_factor  # noqa: E402
from storage.atomic import write_json  # noqa: E402

SHAPE_WORDS = ("circle", "triangle", "rectangle", "shape is", "shape does")


def kind(question: str, answer_type: str) -> str:
    """yes/no or other, about a colour or a shape (easy_vqa's templates)."""
    about = "shape" if any(w in question for w in SHAPE_WORDS) else "color"
    return f"{answer_type}/{about}"


def evaluate(model: TaskModel, data: TaskData, collate: TaskCollator, answers: list[str],
             batches: list[list[int]]) -> dict[str, float]:
    model.eval()
    scores: dict[str, list[float]] = {}
    with torch.no_grad():
        for b in batches:
            for i, p in zip(b, model.logits(collate(b)).argmax(1).tolist()):
                s = accuracy(answers[p], data.labels[i])
                scores.setdefault("all", []).append(s)
                scores.setdefault(kind(data.texts[i], data.answer_types[i]), []).append(s)
    model.train()
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(scores.items())}


def run(pool: str, steps: int, eval_every: int, seed: int) -> dict[str, Any]:
    mcfg: params.ModelParams = params.load("model")
    tp: params.VqaTaskParams = params.load("finetune").vqa
    C, K = feature_meta(["easy_vqa"])
    train, val = load_task("vqa", "easy_vqa", "train"), load_task("vqa", "easy_vqa", "val")
    answers = build_vocab(train.labels, tp.min_answer_count)
    vocab = {a: i for i, a in enumerate(answers)}
    torch.manual_seed(seed)
    model = TaskModel.from_pretrained(load_pretrained(mcfg, C, K), "vqa", len(answers), False, mcfg.dropout, pool)
    groups = model.parameter_groups()
    opts = [torch.optim.AdamW(groups["main"], lr=tp.lr, weight_decay=tp.weight_decay, fused=True)]
    if groups["snn"]:
        opts.append(torch.optim.SGD(groups["snn"], lr=tp.snn_lr, momentum=0.9, weight_decay=tp.snn_weight_decay))
    base = [o.param_groups[0]["lr"] for o in opts]
    warmup_ratio = params.load("finetune").warmup_ratio
    collate = TaskCollator(train, K, mcfg.max_text_len, vocab)
    vcollate = TaskCollator(val, K, mcfg.max_text_len, vocab)
    vbatches = image_batches(val, 256, None)
    curve, step, epoch, t0 = [], 0, 0, time.perf_counter()
    model.train()
    while step < steps:
        for b in image_batches(train, tp.batch_size, seed, epoch):
            if step == steps:
                break
            for o, lr in zip(opts, base):
                o.param_groups[0]["lr"] = lr * lr_factor(step, steps, warmup_ratio, TrainConfig.min_lr_ratio)
            loss = model(collate(b))["loss"]
            for o in opts:
                o.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for o in opts:
                o.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                row = {"step": step, "train_s": round(time.perf_counter() - t0, 1),
                       **evaluate(model, val, vcollate, answers, vbatches)}
                curve.append(row)
                print(f"{pool:8s} {row}", flush=True)
        epoch += 1
    return {"pool": pool, "steps": steps, "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", nargs="+", default=["product", "joint"], choices=["product", "joint", "text"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "vqa_heads.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = [run(pool, args.steps, args.eval_every, args.seed) for pool in args.pools]
    write_json(args.out, {"machine": platform.platform(), "cpu_threads": args.threads, "torch": torch.__version__,
                          "lr": params.load("finetune").vqa.lr, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
