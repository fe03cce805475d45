"""COCO-QA (https://www.cs.toronto.edu/~mren/research/imageqa/data/cocoqa/), in folder `annotations`:
train/ and test/, each with questions.txt, answers.txt, img_ids.txt and types.txt, one item per
line, aligned by line (types: 0 object, 1 number, 2 color, 3 location).

Images: COCO `<images>/train2014/COCO_train2014_<id:012d>.jpg` for train and val2014 for test
(the release draws them from those COCO splits). Splits: train, test; `val_fraction` carves a
validation split from train by image, seeded. Answer types: number -> "number", object, color
and location -> "other"; the COCO-QA type itself is kept in `subset` (object, number, color,
location: the per-type accuracies the papers report). Each question's one answer is stored as 10
identical annotator answers (VQA accuracy = exact match). `images` is the parent of train2014/ and
val2014/ (a wrong level is a DatasetError).
Ids: question "<split>-<line>", image "coco-<id>". Files of unequal length are a DatasetError;
a bad line (non-UTF-8, unknown type, an image id that is not ASCII digits) rejects that question.
"""
from __future__ import annotations

from pathlib import Path

from storage.adapters.base import DatasetError, Prepared
from storage.adapters.official import NOT_UTF8, Builder, carve_val, image_folder, require, require_param
from storage.adapters.vqav2 import coco_image

URL = "https://www.cs.toronto.edu/~mren/research/imageqa/data/cocoqa/"
SPLITS = ("train", "test")
FILES = ("questions", "answers", "img_ids", "types")
TYPES = {"0": ("other", "object"), "1": ("number", "number"), "2": ("other", "color"), "3": ("other", "location")}
IMAGE_FOLDER = {"train": "train2014", "test": "val2014"}


def _read(path: Path) -> list[str | None]:
    """Every line (blank ones too: the files align by line); None for a line that is not UTF-8."""
    raw = path.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    out: list[str | None] = []
    for line in raw:
        try:
            out.append(line.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def build(annotations: str | None, images: str | None, *, splits: list[str], val_fraction: float, seed: int,
          progress: bool = True) -> Prepared:
    del progress  # a few MB of text: no bar needed
    ann = require_param(annotations, "cocoqa", "annotations", "folder holding train/ and test/")
    img_root = image_folder(images, "cocoqa", URL, "COCO folder holding train2014/ val2014/",
                            holds=tuple(IMAGE_FOLDER.values()))
    b = Builder(img_root, tuple(IMAGE_FOLDER.values()))
    for split in SPLITS:
        if split not in splits:
            continue
        cols = {f: _read(require(ann / split / f"{f}.txt", f"{split}/{f}.txt", "cocoqa", URL, "cocoqa.annotations"))
                for f in FILES}
        lengths = {f: len(v) for f, v in cols.items()}
        if len(set(lengths.values())) != 1:
            raise DatasetError(f"cocoqa: the {split}/ files must have one line per question each, got {lengths}")
        for i, line in enumerate(zip(*(cols[f] for f in FILES))):
            with b.record("vqa", f"{split}-{i:06d}"):
                _add(b, img_root, split, i, *line)
    if val_fraction > 0:
        carve_val(b.prep, val_fraction, seed)
    return b.done("cocoqa", ann)


def _add(b: Builder, img_root: Path, split: str, i: int, question: str | None, answer: str | None,
         img: str | None, qtype: str | None) -> None:
    """One aligned line of the four files: a vqa row, or a reject with the reason."""
    qid = f"{split}-{i:06d}"
    img = (img or "").strip()
    problem = NOT_UTF8 if None in (question, answer, qtype) else None
    if problem is None and not (img.isascii() and img.isdigit()):   # int() would refuse "²", which isdigit()
        problem = f"bad image id {img!r}"
    if problem is None and qtype.strip() not in TYPES:
        problem = f"unknown COCO-QA type {qtype.strip()!r} (allowed: 0 object, 1 number, 2 color, 3 location)"
    if problem:
        b.reject("vqa", qid, problem)
        return
    image_id, folder = f"coco-{int(img)}", IMAGE_FOLDER[split]
    b.image(image_id, coco_image(img_root, folder, int(img)), split)
    atype, subset = TYPES[qtype.strip()]
    b.row("vqa", {"question_id": qid, "image_id": image_id, "question": question,
                  "answers": [answer.strip()] * 10, "answer_type": atype, "split": split, "subset": subset})
