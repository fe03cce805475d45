"""What the report computes from evaluate's predictions.jsonl: confusion matrices and per-kind accuracy.

Rows (stages/evaluate.py): id, images, text, prediction (the model's), blind, truth (VQA: the human
answers; VE / NLVR2: the label), answer_type (VQA). Unlabelled rows (no truth) are left out, as
evaluate leaves them out of its figures.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stages.common import paths
from stages.common.cli import StageError
from stages.evaluation.vqa_official import process_prediction, question_accuracy
from storage.tables import ANSWER_TYPES, VE_LABELS

LABELS = {"ve": list(VE_LABELS), "nlvr2": ["false", "true"]}
VARIANTS = ("prediction", "blind")       # the model's and the blind model's answer columns
TOP_ANSWERS = 12                         # answers per VQA confusion matrix; the rest count as REST
REST = "(other answers)"


def predictions_path(task: str, dataset: str) -> Path:
    return paths.evaluate_dir(task, dataset) / "predictions.jsonl"


def read_predictions(task: str, dataset: str) -> list[dict[str, Any]]:
    """The labelled rows of evaluate's predictions of `task` on `dataset`."""
    path = predictions_path(task, dataset)
    if not path.is_file():
        raise StageError(f"{path} not found: run `dvc repro evaluate@{task}`")
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise StageError(f"{path} is not JSON lines ({e}): rerun `dvc repro evaluate@{task}`") from None
    return [r for r in rows if r.get("truth") not in (None, [], "")]


def majority(answers: Sequence[str]) -> str:
    """The most frequent human answer (ties: the first given)."""
    return max(dict.fromkeys(answers), key=list(answers).count)


def answer_kind(answer: str) -> str:
    """The answer type an answer's form shows: yes/no, number (digits once number words are digits), other."""
    a = process_prediction(answer)
    if a in ("yes", "no"):
        return "yes/no"
    return "number" if a.replace(".", "", 1).isdigit() else "other"


def confusion(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """counts[i, j]: samples whose truth is labels[i] and prediction labels[j]."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(truth) - set(index) | set(predicted) - set(index))
    if unknown:
        raise ValueError(f"values {unknown} are none of the labels {list(labels)}")
    out = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        out[index[t], index[p]] += 1
    return out


def confusions(task: str, rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """VE / NLVR2: (labels, {variant: counts}) of the model ("prediction") and the blind model."""
    truth = [str(r["truth"]) for r in rows]
    seen = set(truth) | {str(r[v]) for r in rows for v in VARIANTS}
    labels = [*LABELS.get(task, []), *sorted(seen - set(LABELS.get(task, [])))]
    return labels, {v: confusion(truth, [str(r[v]) for r in rows], labels) for v in VARIANTS}


def _bucket(answers: list[str], known: list[str]) -> list[str]:
    return [a if a in known else REST for a in answers]


def _type_confusion(group: list[dict[str, Any]], top: int) -> tuple[list[str], dict[str, np.ndarray]]:
    truth = [majority([process_prediction(a) for a in r["truth"]]) for r in group]
    counts = Counter(truth)
    labels = sorted(counts, key=lambda a: (-counts[a], a))[:top]
    given = {v: _bucket([process_prediction(r[v]) for r in group], labels) for v in VARIANTS}
    if REST in _bucket(truth, labels) or any(REST in g for g in given.values()):
        labels.append(REST)
    return labels, {v: confusion(_bucket(truth, labels), g, labels) for v, g in given.items()}


def answer_confusions(rows: list[dict[str, Any]], top: int = TOP_ANSWERS) -> dict[str, tuple[list[str], dict]]:
    """VQA, per answer type of the questions: (labels, {variant: counts}) of the most frequent human answer
    against the answer given, over that type's `top` most frequent true answers; any other answer (one of
    another type included) counts as REST. Answers compared as the official evaluation normalises them."""
    types = [*ANSWER_TYPES, *sorted({r["answer_type"] for r in rows} - set(ANSWER_TYPES))]
    groups = {t: [r for r in rows if r["answer_type"] == t] for t in types}
    return {t: _type_confusion(g, top) for t, g in groups.items() if g}


def cross_type(rows: list[dict[str, Any]]) -> dict[str, int]:
    """VQA: per variant, the answers whose type is not the question's (a number to a yes/no question ...)."""
    return {v: sum(answer_kind(r[v]) != r["answer_type"] for r in rows) for v in VARIANTS}


def per_kind(rows: list[dict[str, Any]], kinds: dict[str, str], prior: str) -> list[list[str]]:
    """[kind, questions, model, blind, prior] rows of official VQA accuracy per question kind (`kinds`:
    question id -> kind); questions without a kind are left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if kinds.get(r["id"]) is not None:
            groups.setdefault(kinds[r["id"]], []).append(r)

    def acc(group: list[dict[str, Any]], pred: Any) -> str:
        return f"{sum(question_accuracy(pred(r), r['truth']) for r in group) / len(group):.4f}"
    return [[k, str(len(g)), acc(g, lambda r: r["prediction"]), acc(g, lambda r: r["blind"]),
             acc(g, lambda r: prior)] for k, g in sorted(groups.items())]
