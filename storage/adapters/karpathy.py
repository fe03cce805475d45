"""COCO and Flickr30K captions in the Karpathy split (`dataset_coco.json`, `dataset_flickr30k.json`).

Format: {"images": [{"filename", "split": train|restval|val|test, "sentences": [{"raw", "sentid"}],
"filepath" and "cocoid" (COCO only)}], "dataset": ...}, streamed one image at a time.
Images: COCO `<images>/<filepath>/<filename>` (train2014/, val2014/), Flickr30K
`<images>/<filename>` (flickr30k-images/). Splits: train and restval -> train (subset "restval"),
val, test. COCO's 5K test images get subset "fold0".."fold4": the 1K folds, 1000 consecutive
test images each in file order, as the 1K retrieval results are reported.
`images` is the parent of train2014/ and val2014/ for COCO, the flickr30k-images/ folder itself for
Flickr30K; the other level is a DatasetError naming the right folder.
Ids: image "coco-<cocoid>" / "flickr30k-<file stem>", caption "<sentid>".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import Builder, image_folder, require, require_param, stream_json, text_problem

FILES = {"coco": "dataset_coco.json", "flickr30k": "dataset_flickr30k.json"}
URLS = {"coco": "https://cs.stanford.edu/people/karpathy/deepimagesent/ (caption_datasets.zip); "
                "images: https://cocodataset.org/#download (train2014, val2014)",
        "flickr30k": "https://cs.stanford.edu/people/karpathy/deepimagesent/ (caption_datasets.zip); "
                     "images: https://shannon.cs.illinois.edu/DenotationGraph/"}
SPLIT = {"train": "train", "restval": "train", "val": "val", "test": "test"}
FOLD = 1000
COCO_FOLDERS = ("train2014", "val2014")


def _image_fields(dataset: str) -> tuple[str, ...]:
    return ("filename", "split", "sentences", "filepath", "cocoid") if dataset == "coco" else \
        ("filename", "split", "sentences")


def build(dataset: str, annotations: str | None, images: str | None, *, progress: bool = True) -> Prepared:
    ann = require_param(annotations, dataset, "annotations", f"folder holding {FILES[dataset]}")
    path = require(ann / FILES[dataset], FILES[dataset], dataset, URLS[dataset], f"{dataset}.annotations")
    holds = COCO_FOLDERS if dataset == "coco" else ()
    img_root = image_folder(images, dataset, URLS[dataset], "folder of the images", holds=holds,
                            named=None if holds else "flickr30k-images")
    b = Builder(img_root, holds)
    n_test = 0
    for i, rec in enumerate(tqdm(stream_json(path, "images.item"), desc=dataset, unit="img",
                                 disable=not progress, mininterval=1.0)):
        # Folds count every test record in file order, so a rejected record never shifts them.
        fold = None
        if dataset == "coco" and isinstance(rec, dict) and rec.get("split") == "test":
            fold, n_test = f"fold{n_test // FOLD}", n_test + 1
        with b.record("images", f"#{i}"):
            _add(b, dataset, img_root, i, rec, fold)
    return b.done(dataset, path)


def _add(b: Builder, dataset: str, img_root: Path, i: int, rec: Any, fold: str | None) -> None:
    """One image record and its sentences: rows, or rejects with the reason."""
    problem = text_problem(rec, _image_fields(dataset))
    if problem is None and rec["split"] not in SPLIT:
        problem = f"unknown Karpathy split {rec['split']!r} (allowed: {', '.join(SPLIT)})"
    if problem is None and not isinstance(rec["sentences"], list):
        problem = '"sentences" must be a list'
    if problem:
        b.reject_record(f"#{i}", rec.get("sentences") if isinstance(rec, dict) else None, "sentid", problem)
        return
    if dataset == "coco":
        image_id, file = f"coco-{rec['cocoid']}", img_root / str(rec["filepath"]) / str(rec["filename"])
    else:
        image_id, file = f"flickr30k-{Path(str(rec['filename'])).stem}", img_root / str(rec["filename"])
    split = SPLIT[rec["split"]]
    subset = "restval" if rec["split"] == "restval" else fold
    b.image(image_id, file, split, subset)
    for j, sent in enumerate(rec["sentences"]):
        sid = sent.get("sentid", f"{image_id}-{j}") if isinstance(sent, dict) else f"{image_id}-{j}"
        problem = text_problem(sent, ("raw",))
        if problem:
            b.reject("captions", sid, problem)
            continue
        b.row("captions", {"caption_id": str(sid), "image_id": image_id, "text": sent["raw"],
                           "split": split, "subset": subset})

