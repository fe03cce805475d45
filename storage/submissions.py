"""Benchmark submission files, written atomically from predictions keyed by the canonical ids.

- VQAv2 test-dev / test-std (EvalAI): JSON `[{"question_id": int, "answer": str}]`.
- GQA (the official eval.py): JSON `[{"questionId": str, "prediction": str}]`.
- NLVR2 (the official nlvr2/eval/metrics.py): CSV lines `identifier,True|False`, no header line
  (the script would read a header as one more prediction).
- Retrieval ranks: JSON lines `{"query": id, "ranked": [candidate ids, best first]}`, one per
  query, in the order given (image -> text: caption ids; text -> image: image ids).

Every writer takes the ids the file must cover and raises SubmissionError, naming the first
missing ones, if a prediction is absent: a server or script would otherwise score a partial
file or stop. Predictions for ids outside that list are left out (e.g. test-dev out of test-std
predictions). Each returns the number of entries written.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from storage.atomic import atomic_open

SHOW = 5   # missing ids named in an error


class SubmissionError(ValueError):
    """Predictions do not cover the ids a submission needs, or a value has the wrong type."""


def _ordered(predictions: Mapping[str, Any], ids: Iterable[str], what: str) -> list[tuple[str, Any]]:
    """(id, prediction) for each id once, in order; every id must have a prediction."""
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise SubmissionError(f"{what}: no ids to write")
    missing = [i for i in ids if i not in predictions]
    if missing:
        raise SubmissionError(f"{what}: {len(missing)} of {len(ids)} ids have no prediction, "
                              f"e.g. {', '.join(missing[:SHOW])}")
    return [(i, predictions[i]) for i in ids]


def _strings(pairs: list[tuple[str, Any]], what: str) -> None:
    bad = [i for i, p in pairs if not isinstance(p, str)]
    if bad:
        raise SubmissionError(f"{what}: predictions must be answer strings; not for {', '.join(bad[:SHOW])}")


def write_vqa_results(path: str | os.PathLike, predictions: Mapping[str, str], question_ids: Iterable[str]) -> int:
    """VQAv2 results for EvalAI. `question_ids`: the questions of the phase, e.g. the vqa rows with
    subset "test-dev2015" (test-dev) or every split "test" row (test-std)."""
    pairs = _ordered(predictions, question_ids, "VQAv2 results")
    _strings(pairs, "VQAv2 results")
    not_int = [i for i, _ in pairs if not i.isdigit()]
    if not_int:
        raise SubmissionError(f"VQAv2 results: question ids must be integers, got {', '.join(not_int[:SHOW])}")
    with atomic_open(path, "w") as fh:
        json.dump([{"question_id": int(i), "answer": a} for i, a in pairs], fh)
    return len(pairs)


def write_gqa_predictions(path: str | os.PathLike, predictions: Mapping[str, str], question_ids: Iterable[str]) -> int:
    """GQA predictions for the official evaluation script (e.g. the testdev balanced questions)."""
    pairs = _ordered(predictions, question_ids, "GQA predictions")
    _strings(pairs, "GQA predictions")
    with atomic_open(path, "w") as fh:
        json.dump([{"questionId": i, "prediction": a} for i, a in pairs], fh)
    return len(pairs)


def write_nlvr2_predictions(path: str | os.PathLike, predictions: Mapping[str, bool],
                            identifiers: Iterable[str]) -> int:
    """NLVR2 predictions (e.g. test-P: the nlvr2 rows with subset "test1") as `identifier,True|False`."""
    pairs = _ordered(predictions, identifiers, "NLVR2 predictions")
    bad = [i for i, p in pairs if not isinstance(p, bool)]
    if bad:
        raise SubmissionError(f"NLVR2 predictions: must be True/False; not for {', '.join(bad[:SHOW])}")
    with atomic_open(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerows((i, str(p)) for i, p in pairs)
    return len(pairs)


def write_retrieval_ranks(path: str | os.PathLike, rankings: Mapping[str, Sequence[str]],
                          queries: Iterable[str]) -> int:
    """Per query its candidates ranked best first, as JSON lines; a ranking may not repeat a candidate."""
    pairs = _ordered(rankings, queries, "retrieval ranks")
    for q, ranked in pairs:
        if isinstance(ranked, str) or not all(isinstance(c, str) for c in ranked):
            raise SubmissionError(f"retrieval ranks: the ranking of {q} must be a list of candidate ids")
        if len(set(ranked)) != len(ranked):
            raise SubmissionError(f"retrieval ranks: the ranking of {q} repeats a candidate")
    with atomic_open(path, "w") as fh:
        for q, ranked in pairs:
            fh.write(json.dumps({"query": q, "ranked": list(ranked)}) + "\n")
    return len(pairs)
