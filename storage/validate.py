"""Row-level checks applied to every dataset before its canonical tables are written.

Each failing row becomes a reject with item `<table>:<id>` and a reason; nothing is
dropped silently. Checks: text that can be written (no lone surrogates), unique primary keys,
known split, non-empty text, valid labels and answer types, 1-10 answers (or none with answer
type null: an unanswered question of a test split), and references to accepted images only.
Each image must resolve inside its dataset's roots (storage.containment) and be a regular file;
it is read once, decoded to prove it is usable and to record its real size, and its SHA-256 is
recorded. Any other exception while checking one image is that image's reject, not a crash.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from storage.adapters.base import Prepared, Row
from storage.containment import inside
from storage.images import ImageError, decode, read_file
from storage.rejects import Rejects
from storage.tables import ANSWER_TYPES, KEYS, SPLITS, VE_LABELS

TEXT_FIELD = {"captions": "text", "vqa": "question", "ve": "hypothesis", "nlvr2": "sentence"}
IMAGE_REFS = {"captions": ("image_id",), "vqa": ("image_id",), "ve": ("image_id",),
              "nlvr2": ("left_image_id", "right_image_id")}


def _unwritable(row: Row) -> str | None:
    """Which field holds text that UTF-8 cannot encode (a lone surrogate escape such as \\ud800)."""
    for key, value in row.items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return f"{key} is not valid Unicode text (a lone surrogate such as \\ud800)"
    return None


def _row_problem(table: str, row: Row) -> str | None:
    problem = _unwritable(row)
    if problem:
        return problem
    if row.get("split") not in SPLITS:
        return f"bad split {row.get('split')!r} (allowed: {', '.join(SPLITS)})"
    field = TEXT_FIELD.get(table)
    if field and row.get(field) is not None and not isinstance(row[field], str):
        return f"{field} must be a string, got {type(row[field]).__name__}"
    if field and (row.get(field) is None or not row[field].strip()):
        return f"empty {field}"
    if table == "vqa" and row.get("answers") == []:
        # An unanswered question of a test-server split (VQAv2 test-dev / test-std).
        if row["split"] != "test" or row.get("answer_type") is not None:
            return "no answers: only a question of split test may be unanswered (answer_type null)"
    elif table == "vqa":
        answers = row.get("answers")
        if not isinstance(answers, list) or not 1 <= len(answers) <= 10:
            return "answers must be a list of 1 to 10 strings"
        if not all(isinstance(a, str) and a.strip() for a in answers):
            return "answers must be non-empty strings"
        if row.get("answer_type") not in ANSWER_TYPES:
            return f"unknown answer type {row.get('answer_type')!r} (allowed: {', '.join(ANSWER_TYPES)})"
    if table == "ve" and row.get("label") not in VE_LABELS:
        return f"unknown VE label {row.get('label')!r} (allowed: {', '.join(VE_LABELS)})"
    if table == "nlvr2" and not isinstance(row.get("label"), bool):
        return f"NLVR2 label must be true/false, got {row.get('label')!r}"
    return None


def _dedupe(table: str, rows: list[Row], rejects: Rejects, check: Callable[[Row], str | None]) -> list[Row]:
    seen: set[str] = set()
    kept = []
    key = KEYS[table]
    for row in rows:
        rid = str(row.get(key))
        problem = "duplicate id" if rid in seen else check(row)
        if problem:
            rejects.add(f"{table}:{rid}", problem)
            continue
        seen.add(rid)
        kept.append(row)
    return kept


def _image_problem(row: Row, folder: Path, roots: tuple[Path, ...], min_side: int) -> str | None:
    problem = _unwritable(row)
    if problem:
        return problem
    if row.get("split") not in SPLITS:
        return f"bad split {row.get('split')!r}"
    try:
        data = read_file(inside(folder / row["path"], roots))
        img = decode(data)
    except ImageError as e:
        return str(e)
    if min(img.size) < min_side:
        return f"too small: {img.width}x{img.height} (min side {min_side})"
    row["width"], row["height"], row["sha256"] = img.width, img.height, hashlib.sha256(data).hexdigest()
    return None


def check_images(rows: list[Row], folder: Path, roots: tuple[Path, ...], min_side: int, rejects: Rejects,
                 progress: bool = True) -> list[Row]:
    """Read and decode every image (paths relative to `folder`, resolving inside `roots`); record its true
    size and digest; reject duplicates and images outside the roots, unreadable, undecodable or tiny."""
    def check(row: Row) -> str | None:
        try:
            return _image_problem(row, folder, roots, min_side)
        except Exception as e:  # a decoder's unexpected error on hostile bytes: this image's reject
            return f"undecodable: {type(e).__name__}: {e}"

    it = tqdm(rows, desc="check images", unit="img", disable=not progress, mininterval=1.0)
    return _dedupe("images", list(it), rejects, check)


def check_rows(prepared: Prepared, accepted_images: set[str]) -> dict[str, list[Row]]:
    """Validate the text tables against the row rules and the accepted image ids."""
    out: dict[str, list[Row]] = {}
    for table, refs in IMAGE_REFS.items():
        def check(row: Row, table: str = table, refs: tuple[str, ...] = refs) -> str | None:
            problem = _row_problem(table, row)
            if problem:
                return problem
            missing = [row.get(r) for r in refs if row.get(r) not in accepted_images]
            return f"unknown or rejected image {missing[0]!r}" if missing else None

        out[table] = _dedupe(table, getattr(prepared, table), prepared.rejects, check)
    return out


def reconcile(given: dict[str, int], accepted: dict[str, int], rejects: Rejects) -> dict[str, dict[str, int]]:
    """Per table: given, accepted, rejected; raise if given != accepted + rejected."""
    rejected: dict[str, int] = {}
    for r in rejects.rows:
        table = r["item"].split(":", 1)[0]
        rejected[table] = rejected.get(table, 0) + 1
    counts = {}
    for table in sorted(set(given) | set(accepted) | set(rejected)):
        g, a, j = given.get(table, 0), accepted.get(table, 0), rejected.get(table, 0)
        if g != a + j:
            raise AssertionError(f"{table}: given {g} != accepted {a} + rejected {j}")
        counts[table] = {"given": g, "accepted": a, "rejected": j}
    return counts
