"""SNLI-VE (https://github.com/necla-ml/SNLI-VE), in folder `annotations`: snli_ve_{train,dev,test}.jsonl,
one JSON object per line with "Flickr30K_ID", "sentence2" (the hypothesis), "gold_label" and "pairID".
Files made by the release's own generator name the image "Flikr30kID" instead, with a ".jpg" suffix
("3416050480.jpg"): both spellings are read.

Images: `<images>/<Flickr30K_ID>.jpg`; `images` is the flickr30k-images/ folder itself (pointing at its
parent is a DatasetError naming it). Splits: train, dev -> val, test.
A line that is not UTF-8, not JSON or lacks a field is rejected (`ve:<file>#<line>`); a label
other than entailment / neutral / contradiction is rejected by the row checks.
Ids: pair "<pairID>", image "flickr30k-<Flickr30K_ID>".
"""
from __future__ import annotations

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import Builder, image_folder, parse_json_line, read_lines, require, require_param

URL = "https://github.com/necla-ml/SNLI-VE"
SPLITS = ("train", "dev", "test")
SPLIT = {"train": "train", "dev": "val", "test": "test"}
FIELDS = ("sentence2", "gold_label", "pairID")
IMAGE_KEYS = ("Flickr30K_ID", "Flikr30kID")   # the released files; the release's generator


def _image(rec: dict) -> str:
    key = next((k for k in IMAGE_KEYS if k in rec), IMAGE_KEYS[0])   # neither: the missing-field reject
    return str(rec[key]).removesuffix(".jpg")


def build(annotations: str | None, images: str | None, *, splits: list[str], progress: bool = True) -> Prepared:
    ann = require_param(annotations, "snli_ve", "annotations", "folder of the snli_ve_*.jsonl files")
    files = {s: require(ann / f"snli_ve_{s}.jsonl", f"snli_ve_{s}.jsonl", "snli_ve", URL, "snli_ve.annotations")
             for s in splits}
    img_root = image_folder(images, "snli_ve", URL, "the flickr30k-images/ folder", named="flickr30k-images")
    b = Builder(img_root)
    for name in SPLITS:
        if name not in splits:
            continue
        split = SPLIT[name]
        for lineno, text in tqdm(read_lines(files[name]), desc=f"snli_ve {name}", unit="pair",
                                 disable=not progress, mininterval=1.0):
            item = f"{files[name].name}#{lineno}"
            with b.record("ve", item):
                rec, problem = parse_json_line(text, FIELDS)
                if problem is None and not any(k in rec for k in IMAGE_KEYS):
                    problem = f"missing field {IMAGE_KEYS[0]!r} (or {IMAGE_KEYS[1]!r})"
                if problem:
                    b.reject("ve", item, problem)
                    continue
                image_id = f"flickr30k-{_image(rec)}"
                b.image(image_id, img_root / f"{_image(rec)}.jpg", split)
                b.row("ve", {"pair_id": str(rec["pairID"]), "image_id": image_id, "hypothesis": rec["sentence2"],
                             "label": rec["gold_label"], "split": split})
    return b.done("snli_ve", ann)
