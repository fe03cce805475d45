"""Official-format VQA files for `stages.vqa_eval`: questions, annotations and an EvalAI-format
results file, read and checked, then scored by `vqa_official` as the authors' script scores them.

Every problem is one StageError line naming the file: unreadable JSON, a wrong shape, duplicated
question ids, or results that do not cover exactly the annotated questions (the script asserts
that; here the missing and extra ids are listed).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from stages.common.cli import StageError
from stages.evaluation.vqa_official import question_accuracy, summarize

log = logging.getLogger("stages.vqa_eval")
SHOW = 5   # ids quoted in an error line


def _load(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StageError(f"{what} file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StageError(f"{what} file {path} cannot be read: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StageError(f"{what} file {path} is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def _examples(ids: list[Any]) -> str:
    return ", ".join(repr(i) for i in ids[:SHOW]) + (", ..." if len(ids) > SHOW else "")


def _freeze(value: Any) -> Any:
    """A hashable stand-in that is equal exactly when the JSON values compare equal in Python."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _id_ok(qid: Any) -> bool:
    return isinstance(qid, int | str) and not isinstance(qid, bool)


def _answers_ok(answers: Any) -> bool:
    return isinstance(answers, list) and bool(answers) and all(
        isinstance(a, dict) and isinstance(a.get("answer"), str) for a in answers)


def read_annotations(path: Path) -> list[dict[str, Any]]:
    """The "annotations" list, each with question_id, question_type, answer_type and answers
    [{"answer": text, ...}]; question ids unique."""
    data = _load(path, "annotations")
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list) or not anns:
        raise StageError(f'annotations file {path} must be an object with a non-empty "annotations" list')
    bad = [i for i, a in enumerate(anns) if not isinstance(a, dict) or not _id_ok(a.get("question_id"))
           or not isinstance(a.get("question_type"), str) or not isinstance(a.get("answer_type"), str)
           or not _answers_ok(a.get("answers"))]
    if bad:
        raise StageError(f"annotations file {path}: {len(bad)} annotations lack an integer or text question_id, "
                         f'question_type or answer_type text, or a non-empty answers list of {{"answer": text}} '
                         f"(positions {_examples(bad)})")
    ids = [a["question_id"] for a in anns]
    _unique(ids, f"annotations file {path}")
    return anns


def read_questions(path: Path, ann_ids: set[Any]) -> dict[str, Any]:
    """The questions file: an object with a "questions" list covering every annotated question."""
    data = _load(path, "questions")
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list) or not all(isinstance(q, dict) and _id_ok(q.get("question_id"))
                                                  for q in questions):
        raise StageError(f'questions file {path} must be an object with a "questions" list of objects with question_id')
    missing = sorted(ann_ids - {q["question_id"] for q in questions}, key=repr)
    if missing:
        raise StageError(f"questions file {path} lacks {len(missing)} annotated questions ({_examples(missing)}): "
                         f"are the questions and annotations files of the same split?")
    return data


def read_results(path: Path, ann_ids: list[Any]) -> dict[Any, str]:
    """question_id -> answer of an EvalAI-format results file covering exactly `ann_ids`."""
    res = _load(path, "results")
    if not isinstance(res, list):
        raise StageError(f'results file {path} must be a JSON array of {{"question_id", "answer"}} objects')
    bad = [i for i, r in enumerate(res) if not isinstance(r, dict) or not _id_ok(r.get("question_id"))
           or not isinstance(r.get("answer"), str)]
    if bad:
        raise StageError(f'results file {path}: {len(bad)} entries are not {{"question_id": integer or text, '
                         f'"answer": text}} objects (positions {_examples(bad)})')
    ids = [r["question_id"] for r in res]
    _unique(ids, f"results file {path}")
    have, want = set(ids), set(ann_ids)
    missing = [i for i in ann_ids if i not in have]
    extra = [i for i in ids if i not in want]
    if missing or extra:
        raise StageError(f"results file {path} must answer exactly the {len(want)} annotated questions: "
                         f"{len(missing)} missing ({_examples(missing) or 'none'}), "
                         f"{len(extra)} not annotated ({_examples(extra) or 'none'})")
    return {r["question_id"]: r["answer"] for r in res}


def _unique(ids: list[Any], where: str) -> None:
    seen: set[Any] = set()
    dup = [i for i in ids if i in seen or seen.add(i)]
    if dup:
        raise StageError(f"{where}: {len(dup)} repeated question ids ({_examples(dup)})")


def _check_choices(questions: dict[str, Any], answers: dict[Any, str], path: Path) -> None:
    """Multiple-choice tasks (VQA v1): every answer must be one of its question's choices."""
    if questions.get("task_type") != "Multiple Choice":
        return
    choices = {q["question_id"]: q.get("multiple_choices") or [] for q in questions["questions"]}
    bad = [i for i, a in answers.items() if a not in choices.get(i, [])]
    if bad:
        raise StageError(f"results file {path}: {len(bad)} answers are not among their question's multiple_choices "
                         f"({_examples(bad)})")


def evaluate_files(questions: Path, annotations: Path, results: Path) -> dict[str, Any]:
    """overall, perAnswerType and perQuestionType in percent, as the official script reports them."""
    anns = read_annotations(annotations)
    ids = [a["question_id"] for a in anns]
    predicted = read_results(results, ids)
    _check_choices(read_questions(questions, set(ids)), predicted, results)
    accs, shared = [], 0
    for a in anns:
        records = [_freeze({k: v for k, v in r.items() if k != "answer"}) for r in a["answers"]]
        shared += len({(r["answer"], k) for r, k in zip(a["answers"], records)}) < len(records)
        accs.append(question_accuracy(predicted[a["question_id"]], [r["answer"] for r in a["answers"]], records))
    if shared:
        log.warning("%d questions have identical answer records (no answer_id?): the official script leaves "
                    "identical records out together, which lowers their accuracy", shared)
    return summarize(accs, [a["answer_type"] for a in anns], [a["question_type"] for a in anns])
