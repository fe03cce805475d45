"""Adapter for a user's own data: a folder of images plus a JSONL annotation file.

One JSON object per line:
    {"image": "sub/dir/cat.jpg",          # required, relative to the images root
     "id": "cat-01",                      # optional; default: the path without extension
     "split": "train",                    # optional: train | val | test (default train)
     "captions": ["a cat on a mat"],      # optional list of strings
     "questions": [{"question": "what animal is this?",
                    "answers": ["cat", "cat", "kitten"],     # 1 to 10 annotator answers
                    "answer_type": "other"}]}                # optional: yes/no | number | other
A line that is not valid JSON, not an object, lacks "image", repeats an id, or has
mistyped fields becomes a reject (`lines:<n>`); a question with an unknown answer type is
rejected on its own. The image path is untrusted: prepare rejects it unless it resolves inside
the root (storage.containment). With val_fraction > 0, that share of the train images (seeded) moves to val.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from storage.adapters.base import DatasetError, Prepared
from storage.adapters.official import carve_val, infer_answer_type
from storage.containment import real_roots
from storage.tables import ANSWER_TYPES


def _default_id(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(Path(image).with_suffix("")))


def _parse_line(text: str) -> dict[str, Any]:
    """One annotation line -> record; raises ValueError with the reason."""
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(rec, dict):
        raise ValueError("line is not a JSON object")
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


def build(root: str | None, annotations: str | None, *, val_fraction: float, seed: int) -> Prepared:
    if not root or not annotations:
        raise DatasetError("custom dataset needs prepare.custom.root (images folder) and "
                           "prepare.custom.annotations (JSONL file) in params.yaml")
    root_p, ann_p = Path(root).resolve(), Path(annotations)
    if not root_p.is_dir():
        raise DatasetError(f"custom images folder not found: {root_p}")
    if not ann_p.is_file():
        raise DatasetError(f"custom annotations file not found: {ann_p}")

    prep = Prepared(image_roots=real_roots(root_p))
    seen: set[str] = set()
    n_lines = 0
    with open(ann_p, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            n_lines += 1
            try:
                rec = _parse_line(raw.decode("utf-8"))
            except UnicodeDecodeError:
                prep.rejects.add(f"lines:{lineno}", "not UTF-8 text")
                continue
            except ValueError as e:
                prep.rejects.add(f"lines:{lineno}", str(e))
                continue
            image_id = rec.get("id") or _default_id(rec["image"])
            if image_id in seen:
                prep.rejects.add(f"lines:{lineno}", f"duplicate image id {image_id!r}")
                continue
            seen.add(image_id)
            _add_record(prep, rec, image_id, str(root_p / rec["image"]))
    if n_lines == 0:
        raise DatasetError(f"custom annotations file {ann_p} has no records")
    if val_fraction > 0:
        carve_val(prep, val_fraction, seed)
    prep.given |= {"lines": n_lines, "images": len(prep.images), "captions": len(prep.captions)}
    prep.given.setdefault("vqa", 0)
    prep.accepted_extra["lines"] = n_lines - sum(r["item"].startswith("lines:") for r in prep.rejects.rows)
    return prep


def _add_record(prep: Prepared, rec: dict[str, Any], image_id: str, path: str) -> None:
    split = rec.get("split", "train")
    prep.images.append({"image_id": image_id, "path": path, "width": 0, "height": 0, "split": split})
    for j, cap in enumerate(rec.get("captions", [])):
        prep.captions.append({"caption_id": f"{image_id}-c{j}", "image_id": image_id, "text": cap, "split": split})
    for j, q in enumerate(rec.get("questions", [])):
        qid = f"{image_id}-q{j}"
        prep.given["vqa"] = prep.given.get("vqa", 0) + 1
        answers = q.get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            prep.rejects.add(f"vqa:{qid}", '"answers" must be a list of strings')
            continue
        atype = q.get("answer_type") or infer_answer_type(answers)
        if atype not in ANSWER_TYPES:
            prep.rejects.add(f"vqa:{qid}", f"unknown answer type {atype!r} (allowed: {', '.join(ANSWER_TYPES)})")
            continue
        prep.vqa.append({"question_id": qid, "image_id": image_id, "question": q.get("question", ""),
                         "answers": answers, "answer_type": atype, "split": split})

