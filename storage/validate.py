"""Row-level checks applied to every dataset before its canonical tables are written.

Each failing row becomes a reject with item `<table>:<id>` and a reason; nothing is
dropped silently. Checks: unique primary keys, known split, non-empty text, valid labels
and answer types, 1-10 answers (or none with answer type null: an unanswered question of
a test-server split), and references to accepted images only. Images are
decoded once to prove they are usable and to record their real size.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from storage.adapters.base import Prepared, Row
from storage.images import ImageError, open_image
from storage.rejects import Rejects
from storage.tables import ANSWER_TYPES, KEYS, SPLITS, VE_LABELS

TEXT_FIELD = {"captions": "text", "vqa": "question", "ve": "hypothesis", "nlvr2": "sentence"}
IMAGE_REFS = {"captions": ("image_id",), "vqa": ("image_id",), "ve": ("image_id",),
              "nlvr2": ("left_image_id", "right_image_id")}


def _row_problem(table: str, row: Row) -> str | None:
    if row.get("split") not in SPLITS:
        return f"bad split {row.get('split')!r} (allowed: {', '.join(SPLITS)})"
    text = row.get(TEXT_FIELD[table]) if table in TEXT_FIELD else None
    if table in TEXT_FIELD and (not isinstance(text, str) or not text.strip()):
        return f"empty {TEXT_FIELD[table]}"
    if table == "vqa" and row.get("answers") == []:
        # An unanswered question of a test-server split (VQAv2 test-dev / test-std).
        if row["split"] != "test" or row.get("answer_type") is not None:
            return "no answers (only a test-split question with answer_type null may have none)"
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


def check_images(rows: list[Row], root: Path, min_side: int, rejects: Rejects, progress: bool = True) -> list[Row]:
    """Decode every image; record its true size; reject duplicates, undecodable and tiny ones."""
    def check(row: Row) -> str | None:
        if row.get("split") not in SPLITS:
            return f"bad split {row.get('split')!r}"
        try:
            img = open_image(root / row["path"])
        except ImageError as e:
            return str(e)
        if min(img.size) < min_side:
            return f"too small: {img.width}x{img.height} (min side {min_side})"
        row["width"], row["height"] = img.width, img.height
        return None

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
