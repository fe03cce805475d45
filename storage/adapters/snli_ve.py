"""SNLI-VE (https://github.com/necla-ml/SNLI-VE), in folder `annotations`: snli_ve_{train,dev,test}.jsonl,
one JSON object per line with "Flickr30K_ID", "sentence2" (the hypothesis), "gold_label" and "pairID".

Images: `<images>/<Flickr30K_ID>.jpg` (flickr30k-images/). Splits: train, dev -> val, test.
A line that is not UTF-8, not JSON or lacks a field is rejected (`ve:<file>#<line>`); a label
other than entailment / neutral / contradiction is rejected by the row checks.
Ids: pair "<pairID>", image "flickr30k-<Flickr30K_ID>".
"""
from __future__ import annotations

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import Builder, parse_json_line, read_lines, require, require_param

URL = "https://github.com/necla-ml/SNLI-VE"
SPLITS = ("train", "dev", "test")
SPLIT = {"train": "train", "dev": "val", "test": "test"}
FIELDS = ("Flickr30K_ID", "sentence2", "gold_label", "pairID")




def build(annotations: str | None, images: str | None, *, splits: list[str], progress: bool = True) -> Prepared:
    ann = require_param(annotations, "snli_ve", "annotations", "folder of the snli_ve_*.jsonl files")
    img_root = require(require_param(images, "snli_ve", "images", "the flickr30k-images/ folder"),
                       "images folder", "snli_ve", URL, "snli_ve.images", folder=True)
    files = {s: require(ann / f"snli_ve_{s}.jsonl", f"snli_ve_{s}.jsonl", "snli_ve", URL, "snli_ve.annotations")
             for s in splits}
    b = Builder()
    for name in SPLITS:
        if name not in splits:
            continue
        split = SPLIT[name]
        for lineno, text in tqdm(read_lines(files[name]), desc=f"snli_ve {name}", unit="pair",
                                 disable=not progress, mininterval=1.0):
            rec, problem = parse_json_line(text, FIELDS)
            if problem:
                b.reject("ve", f"{files[name].name}#{lineno}", problem)
                continue
            image_id = f"flickr30k-{rec['Flickr30K_ID']}"
            b.image(image_id, img_root / f"{rec['Flickr30K_ID']}.jpg", split)
            b.row("ve", {"pair_id": str(rec["pairID"]), "image_id": image_id, "hypothesis": rec["sentence2"],
                         "label": rec["gold_label"], "split": split})
    return b.done("snli_ve", ann)
