"""VQAv2 in its official files (https://visualqa.org/download.html), in folder `annotations`:

    v2_OpenEnded_mscoco_{train2014,val2014,test-dev2015,test2015}_questions.json
        {"questions": [{"question_id", "image_id", "question"}], ...}
    v2_mscoco_{train2014,val2014}_annotations.json
        {"annotations": [{"question_id", "image_id", "answer_type", "answers": [{"answer"}] x 10}], ...}

Images: `<images>/<folder>/COCO_<folder>_<image_id:012d>.jpg` (train2014/, val2014/, test2015/); `images`
is the parent of those folders (a wrong level is a DatasetError).
Splits: train2014 -> train, val2014 -> val; the test questions have no answers: they become rows
with answers [] and answer_type null in split "test", subset "test-dev2015" for the questions of
the test-dev file and "test2015" for the rest of the test2015 (test-std) file. A test-dev result
file holds the "test-dev2015" rows; a test-std one every "test" row (test-dev is part of test2015).
Questions are held by id while their annotation file streams past (one pass over each file);
answer strings are interned (a few thousand distinct ones among millions).
Ids: question "<question_id>", image "coco-<image_id>".
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import Builder, image_folder, require, require_param, stream_json, text_problem

URL = "https://visualqa.org/download.html"
SUBSETS = ("train2014", "val2014", "test-dev2015", "test2015")
SPLIT = {"train2014": "train", "val2014": "val", "test-dev2015": "test", "test2015": "test"}
IMAGE_FOLDER = {"train2014": "train2014", "val2014": "val2014", "test-dev2015": "test2015", "test2015": "test2015"}


def questions_file(subset: str) -> str:
    return f"v2_OpenEnded_mscoco_{subset}_questions.json"


def annotations_file(subset: str) -> str:
    return f"v2_mscoco_{subset}_annotations.json"


def coco_image(images: Path, folder: str, image_id: int) -> Path:
    return images / folder / f"COCO_{folder}_{image_id:012d}.jpg"


def _image_id(rec: dict[str, Any]) -> int | None:
    v = rec.get("image_id")
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def read_questions(b: Builder, records: Iterable[Any], source: str) -> dict[str, dict[str, Any]]:
    """Question records by id; unusable and repeated ones are rejected."""
    out: dict[str, dict[str, Any]] = {}
    for i, rec in enumerate(records):
        qid = str(rec.get("question_id", f"{source}#{i}")) if isinstance(rec, dict) else f"{source}#{i}"
        with b.record("vqa", qid):
            problem = text_problem(rec, ("question_id", "image_id", "question"))
            if problem is None and _image_id(rec) is None:
                problem = f"bad image_id {rec['image_id']!r}"
            if problem is None and qid in out:
                problem = f"duplicate question id in {source}"
            if problem:
                b.reject("vqa", qid, problem)
                continue
            out[qid] = rec
    return out


def _answers_problem(ann: dict[str, Any]) -> str | None:
    answers = ann.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("answer"), str)
                                                 for a in answers):
        return '"answers" must be a list of {"answer": text} objects'
    if any("\ufffd" in a["answer"] for a in answers):
        return "not UTF-8 text"
    return None


def join_answers(b: Builder, questions: dict[str, dict[str, Any]], annotations: Iterable[Any], split: str,
                 image: Callable[[dict[str, Any]], tuple[str, Path]], source: str) -> None:
    """Stream annotations, pairing each with its question; both sides' leftovers are rejected."""
    for i, ann in enumerate(annotations):
        qid = str(ann.get("question_id", f"{source}#{i}")) if isinstance(ann, dict) else f"{source}#{i}"
        q = questions.pop(qid, None)
        with b.record("vqa", qid):   # the question (if any) and its annotation are one item: one reject
            problem = text_problem(ann, ("question_id", "image_id", "answers", "answer_type"))
            if problem is None and q is None:
                problem = f"annotation of an unknown or already annotated question in {source}"
            if problem is None and ann["image_id"] != q["image_id"]:
                problem = f"annotation image_id {ann['image_id']!r} differs from the question's {q['image_id']!r}"
            problem = problem or _answers_problem(ann)
            if problem:
                b.reject("vqa", qid, problem)
                continue
            image_id, path = image(q)
            b.image(image_id, path, split)
            b.row("vqa", {"question_id": qid, "image_id": image_id, "question": q["question"],
                          "answers": [sys.intern(a["answer"]) for a in ann["answers"]],
                          "answer_type": sys.intern(str(ann["answer_type"])),
                          "split": split})
    for qid in questions:
        b.reject("vqa", qid, f"question without an annotation in {source}")


def build(annotations: str | None, images: str | None, *, splits: list[str], progress: bool = True) -> Prepared:
    ann = require_param(annotations, "vqav2", "annotations", "folder of the official question/annotation files")
    files = {s: require(ann / questions_file(s), questions_file(s), "vqav2", URL, "vqav2.annotations")
             for s in splits}
    ann_files = {s: require(ann / annotations_file(s), annotations_file(s), "vqav2", URL, "vqav2.annotations")
                 for s in splits if s in ("train2014", "val2014")}
    folders = tuple(dict.fromkeys(IMAGE_FOLDER.values()))
    img_root = image_folder(images, "vqav2", URL, "folder holding train2014/ val2014/ test2015/", holds=folders)
    b = Builder(img_root, folders)

    def bar(it: Iterable[Any], name: str) -> Iterable[Any]:
        return tqdm(it, desc=f"vqav2 {name}", unit="q", disable=not progress, mininterval=1.0)

    for subset in ("train2014", "val2014"):
        if subset in splits:
            questions = read_questions(b, bar(stream_json(files[subset], "questions.item"), subset), subset)

            def image(q: dict[str, Any], folder: str = IMAGE_FOLDER[subset]) -> tuple[str, Path]:
                return f"coco-{q['image_id']}", coco_image(img_root, folder, q["image_id"])

            join_answers(b, questions, bar(stream_json(ann_files[subset], "annotations.item"), subset),
                         SPLIT[subset], image, annotations_file(subset))
    test: dict[str, dict[str, Any]] = {}
    for subset in ("test-dev2015", "test2015"):  # test-dev first: its questions keep that subset
        if subset in splits:
            records = bar(stream_json(files[subset], "questions.item"), subset)
            for qid, q in read_questions(b, records, subset).items():
                test.setdefault(qid, q | {"subset": subset})   # a test-dev question again in test2015: one item
    for qid, q in test.items():
        image_id = f"coco-{q['image_id']}"
        b.image(image_id, coco_image(img_root, "test2015", q["image_id"]), "test")
        b.row("vqa", {"question_id": qid, "image_id": image_id, "question": q["question"], "answers": [],
                      "answer_type": None, "split": "test", "subset": q["subset"]})
    return b.done("vqav2", ann)
