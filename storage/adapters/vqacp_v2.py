"""VQA-CP v2 in its official files (https://www.cc.gatech.edu/grads/a/aagrawal307/vqa-cp/), in folder
`annotations`: vqacp_v2_{train,test}_{questions,annotations}.json, each a top-level list of records
like VQAv2's plus "coco_split" (train2014 | val2014: where the image lives).

Images: `<images>/<coco_split>/COCO_<coco_split>_<image_id:012d>.jpg`; `images` is the parent of
train2014/ and val2014/ (a wrong level is a DatasetError). Splits: train, test (both
answered); VQA-CP has no validation split: `val_fraction` carves one from train by image, seeded.
Train and test split questions, not images, so an image may serve both (its images row keeps the
split it was first seen in; the question rows' split is what counts).
Ids: question "<question_id>" (the VQAv2 ids), image "coco-<image_id>".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import Builder, carve_val, image_folder, require, require_param, stream_json
from storage.adapters.vqav2 import coco_image, join_answers, read_questions

URL = "https://www.cc.gatech.edu/grads/a/aagrawal307/vqa-cp/"
SPLITS = ("train", "test")
FOLDERS = ("train2014", "val2014")


def build(annotations: str | None, images: str | None, *, splits: list[str], val_fraction: float, seed: int,
          progress: bool = True) -> Prepared:
    ann = require_param(annotations, "vqacp_v2", "annotations", "folder of the vqacp_v2_*.json files")
    names = [f"vqacp_v2_{s}_{kind}.json" for s in splits for kind in ("questions", "annotations")]
    for name in names:
        require(ann / name, name, "vqacp_v2", URL, "vqacp_v2.annotations")
    img_root = image_folder(images, "vqacp_v2", URL, "folder holding train2014/ val2014/", holds=FOLDERS)
    b = Builder(img_root, FOLDERS)

    def image(q: dict[str, Any]) -> tuple[str, Path]:
        folder = str(q.get("coco_split"))   # a wrong value shows in the image's "missing file" reject
        return f"coco-{q['image_id']}", coco_image(img_root, folder, q["image_id"])

    for split in SPLITS:  # train first, so an image shared with test is a train image (carve_val)
        if split not in splits:
            continue
        qfile, afile = f"vqacp_v2_{split}_questions.json", f"vqacp_v2_{split}_annotations.json"
        records = tqdm(stream_json(ann / qfile, "item"), desc=f"vqacp_v2 {split}", unit="q",
                       disable=not progress, mininterval=1.0)
        questions = read_questions(b, records, qfile)
        join_answers(b, questions, stream_json(ann / afile, "item"), split, image, afile)
    if val_fraction > 0:
        carve_val(b.prep, val_fraction, seed)
    return b.done("vqacp_v2", ann)
