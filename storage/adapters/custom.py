"""Adapter for a user's own data: a folder of images plus a JSONL annotation file.

One JSON object per line:
    {"image": "sub/dir/cat.jpg",          # required, relative to the images root
     "id": "cat-01",                      # optional; default: the image path as written, normalised
     "split": "train",                    # optional: train | val | test (default train)
     "captions": ["a cat on a mat"],      # optional list of strings
     "questions": [{"question": "what animal is this?",
                    "answers": ["cat", "cat", "kitten"],     # 1 to 10 annotator answers (one is stored x10)
                    "answer_type": "other"}]}                # optional: yes/no | number | other
A line that is not UTF-8 or valid JSON, is not an object, repeats a key, nests too deeply, has a
key other than those above, lacks "image", repeats an id, or has mistyped fields becomes a
reject (`lines:<n>`); so does a line that breaks the parser in a way no check foresaw. A question
with an unknown key, unknown answer type or no "question" is rejected on its own; one without
answers is kept only in split test (an unanswered test question, answer_type null). A UTF-8 byte
order mark is allowed. The image path is untrusted: prepare rejects it unless it resolves inside
the root (storage.containment). With val_fraction > 0, that share of the train images (seeded)
moves to val.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from storage.adapters.base import DatasetError, Prepared
from storage.adapters.official import NOT_UTF8, carve_val, infer_answer_type, load_json_line, read_lines
from storage.containment import real_roots
from storage.tables import ANSWER_TYPES

KEYS = ("image", "id", "split", "captions", "questions")
QUESTION_KEYS = ("question", "answers", "answer_type")


def _unknown(keys: Any, known: tuple[str, ...], where: str = "") -> str | None:
    unknown = [k for k in keys if k not in known]
    if not unknown:
        return None
    names = ", ".join(repr(k) for k in unknown)
    return f"unknown key{'s' if len(unknown) > 1 else ''} {names}{where} (known: {', '.join(known)})"


def _parse_line(text: str | None) -> dict[str, Any]:
    """One annotation line -> record; raises ValueError with the reason."""
    if text is None:
        raise ValueError(NOT_UTF8)
    rec = load_json_line(text)
    if not isinstance(rec, dict):
        raise ValueError("line is not a JSON object")
    problem = _unknown(rec, KEYS)
    if problem:
        raise ValueError(problem)
    if not isinstance(rec.get("image"), str) or not rec["image"].strip():
        raise ValueError('missing "image" (a path relative to the images root)')
    caps = rec.get("captions", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ValueError('"captions" must be a list of strings')
    qs = rec.get("questions", [])
    if not isinstance(qs, list) or not all(isinstance(q, dict) for q in qs):
        raise ValueError('"questions" must be a list of objects')
    if "id" in rec and (not isinstance(rec["id"], str) or not rec["id"]):
        raise ValueError('"id" must be a non-empty string')
    return rec


def _image_id(rec: dict[str, Any], seen: set[str]) -> str:
    """The line's id (the normalised path when it has none, so that ids differ when paths do); new ones only."""
    image_id = rec.get("id") or posixpath.normpath(rec["image"])
    if image_id in seen:
        raise ValueError(f"duplicate image id {image_id!r}")
    seen.add(image_id)
    return image_id


def build(root: str | None, annotations: str | None, *, val_fraction: float, seed: int) -> Prepared:
    if not root or not annotations:
        raise DatasetError("custom dataset needs prepare.custom.root (images folder) and "
                           "prepare.custom.annotations (JSONL file) in params.yaml")
    root_p, ann_p = Path(root).resolve(), Path(annotations)
    if not root_p.is_dir():
        raise DatasetError(f"custom images folder not found: {root_p}")
    if not ann_p.is_file():
        raise DatasetError(f"custom annotations file not found or not a regular file: {ann_p}")

    prep = Prepared(image_roots=real_roots(root_p), given={"vqa": 0})
    seen: set[str] = set()
    n_lines = n_rejected = 0
    try:
        for lineno, text in read_lines(ann_p):
            n_lines += 1
            try:
                rec = _parse_line(text)
                image_id = _image_id(rec, seen)
            except ValueError as e:
                prep.rejects.add(f"lines:{lineno}", str(e))
                n_rejected += 1
                continue
            except Exception as e:  # the boundary: no input line may stop the stage
                prep.rejects.add(f"lines:{lineno}", f"unusable line: {type(e).__name__}: {e}")
                n_rejected += 1
                continue
            _add_record(prep, rec, image_id, str(root_p / rec["image"]))
    except OSError as e:
        raise DatasetError(f"cannot read the custom annotations file {ann_p}: {e.strerror or e}") from None
    if n_lines == 0:
        raise DatasetError(f"custom annotations file {ann_p} has no records")
    if val_fraction > 0:
        carve_val(prep, val_fraction, seed)
    prep.given |= {"lines": n_lines, "images": len(prep.images), "captions": len(prep.captions)}
    prep.accepted_extra["lines"] = n_lines - n_rejected
    return prep


def _question_problem(q: dict[str, Any]) -> str | None:
    problem = _unknown(q, QUESTION_KEYS, " in a question")
    if problem:
        return problem
    if "question" not in q:
        return 'missing "question"'
    answers = q.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return '"answers" must be a list of strings'
    atype = q.get("answer_type")
    if atype is not None and atype not in ANSWER_TYPES:
        return f"unknown answer type {atype!r} (allowed: {', '.join(ANSWER_TYPES)})"
    return None


def _add_record(prep: Prepared, rec: dict[str, Any], image_id: str, path: str) -> None:
    split = rec.get("split", "train")
    prep.images.append({"image_id": image_id, "path": path, "width": 0, "height": 0, "split": split})
    for j, cap in enumerate(rec.get("captions", [])):
        prep.captions.append({"caption_id": f"{image_id}-c{j}", "image_id": image_id, "text": cap, "split": split})
    for j, q in enumerate(rec.get("questions", [])):
        qid = f"{image_id}-q{j}"
        prep.given["vqa"] += 1
        problem = _question_problem(q)
        if problem:
            prep.rejects.add(f"vqa:{qid}", problem)
            continue
        answers = q.get("answers", [])
        if len(answers) == 1:   # one ground truth, stored x10 as GQA/COCO-QA are: the official score of a match is 1
            answers = answers * 10
        # No answers: an unanswered test question (answer_type null); the row checks refuse it in other splits.
        atype = q.get("answer_type") or (infer_answer_type(answers) if answers else None)
        prep.vqa.append({"question_id": qid, "image_id": image_id, "question": q["question"],
                         "answers": answers, "answer_type": atype, "split": split})
