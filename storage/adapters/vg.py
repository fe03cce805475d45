"""Visual Genome region descriptions as pretraining captions
(https://homes.cs.washington.edu/~ranjay/visualgenome/api.html, v1.2), in folder `annotations`:
region_descriptions.json, a top-level list [{"id": image id, "regions": [{"region_id", "phrase", ...}]}],
streamed one image at a time (the file is ~700 MB).

Images: `<images>/VG_100K/<id>.jpg` or `<images>/VG_100K_2/<id>.jpg`. Every region phrase is a
caption of its image; all images are train, and `val_fraction` carves a validation split by image
(seeded). `exclude_coco` (the path of COCO's Karpathy `dataset_coco.json`) leaves out, as rejects,
the VG images that are COCO Karpathy val/test images (found through image_data.json's coco_id;
its image key is "image_id", or "id" in older releases), so pretraining never sees the COCO
retrieval test images (the papers' leakage rule). How many it left out is logged; matching none
at all is a DatasetError, since that means the files do not fit together.
`images` is the parent of VG_100K/ and VG_100K_2/ (a wrong level is a DatasetError).
Ids: image "vg-<id>", caption "<region_id>".
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from storage.adapters.base import DatasetError, Prepared
from storage.adapters.official import (
    Builder,
    carve_val,
    image_folder,
    require,
    require_param,
    stream_json,
    text_problem,
)

log = logging.getLogger(__name__)
URL = "https://homes.cs.washington.edu/~ranjay/visualgenome/api.html"
FOLDERS = ("VG_100K", "VG_100K_2")
EXCLUDED = "a COCO Karpathy val/test image (vg.exclude_coco: kept out of pretraining)"


def _vg_id(rec: dict[str, Any]) -> Any:
    return rec.get("image_id", rec.get("id"))   # "id" in the older image_data.json


def _coco_test_images(ann: Path, karpathy: Path) -> set[Any]:
    """VG ids of the images that are COCO Karpathy val/test images; none at all is a DatasetError."""
    held_out = {rec.get("cocoid") for rec in stream_json(karpathy, "images.item")
                if isinstance(rec, dict) and rec.get("split") in ("val", "test")} - {None}
    data = require(ann / "image_data.json", "image_data.json (for exclude_coco)", "vg", URL, "vg.annotations")
    with_coco = [rec for rec in stream_json(data, "item") if isinstance(rec, dict) and rec.get("coco_id") is not None]
    found = {_vg_id(rec) for rec in with_coco if isinstance(rec["coco_id"], int) and rec["coco_id"] in held_out}
    found.discard(None)
    if not found:
        raise DatasetError(f"vg: exclude_coco matched no image: none of the {len(with_coco)} image_data.json "
                           f"record(s) with a coco_id is a Karpathy val/test image of {karpathy} "
                           f"({len(held_out)} such images); check that the two files belong together")
    return found


def build(annotations: str | None, images: str | None, *, val_fraction: float, seed: int,
          exclude_coco: str | None, progress: bool = True) -> Prepared:
    ann = require_param(annotations, "vg", "annotations", "folder holding region_descriptions.json")
    img_root = image_folder(images, "vg", URL, "folder holding VG_100K/ and VG_100K_2/", holds=FOLDERS)
    regions = require(ann / "region_descriptions.json", "region_descriptions.json", "vg", URL, "vg.annotations")
    excluded: set[int] = set()
    if exclude_coco:
        karpathy = Path(exclude_coco).expanduser()
        if not karpathy.is_file():
            raise DatasetError(f"vg: prepare.vg.exclude_coco names {karpathy}, which does not exist (COCO's Karpathy "
                               "dataset_coco.json, published at https://cs.stanford.edu/people/karpathy/deepimagesent/)")
        excluded = _coco_test_images(ann, karpathy)
    files = {folder: {e.name for e in os.scandir(img_root / folder)} if (img_root / folder).is_dir() else set()
             for folder in FOLDERS}
    b = Builder(img_root, FOLDERS)
    for i, rec in enumerate(tqdm(stream_json(regions, "item"), desc="vg", unit="img", disable=not progress,
                                 mininterval=1.0)):
        with b.record("images", f"#{i}"):
            _add(b, i, rec, excluded, img_root, files)
    if exclude_coco:
        log.info("vg: exclude_coco left out %d image(s) (of %d COCO Karpathy val/test images in image_data.json)",
                 sum(r["reason"] == EXCLUDED for r in b.prep.rejects.rows), len(excluded))
    if val_fraction > 0:
        carve_val(b.prep, val_fraction, seed)
    return b.done("vg", ann)


def _add(b: Builder, i: int, rec: Any, excluded: set[Any], img_root: Path, files: dict[str, set[str]]) -> None:
    """One image record and its regions: rows, or rejects with the reason."""
    problem = text_problem(rec, ("id", "regions"))
    if problem is None and not isinstance(rec["regions"], list):
        problem = '"regions" must be a list'
    if problem is None and rec["id"] in excluded:
        problem = EXCLUDED
    if problem:
        item, regions = (rec.get("id", f"#{i}"), rec.get("regions")) if isinstance(rec, dict) else (f"#{i}", None)
        b.reject_record(item, regions, "region_id", problem)
        return
    image_id, name = f"vg-{rec['id']}", f"{rec['id']}.jpg"
    folder = next((f for f in FOLDERS if name in files[f]), FOLDERS[0])
    b.image(image_id, img_root / folder / name, "train")
    for j, region in enumerate(rec["regions"]):
        rid = region.get("region_id", f"{image_id}#{j}") if isinstance(region, dict) else f"{image_id}#{j}"
        problem = text_problem(region, ("region_id", "phrase"))
        if problem:
            b.reject("captions", rid, problem)
            continue
        b.row("captions", {"caption_id": str(rid), "image_id": image_id, "text": region["phrase"],
                           "split": "train"})
