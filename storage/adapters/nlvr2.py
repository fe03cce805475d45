"""NLVR2 (https://github.com/lil-lab/nlvr/tree/master/nlvr2; images: https://lil.nlp.cornell.edu/nlvr/),
in folder `annotations`: {train,dev,test1}.json, JSON lines with "identifier", "sentence", "label"
("True" / "False") and, for train, "directory" (the images' subfolder).

Each item pairs two images named from its identifier: `dev-850-0-0` -> `dev-850-0-img0.png` and
`dev-850-0-img1.png`, under `<images>/dev/` (train: `<images>/train/<directory>/`); `images` is the
parent of train/ dev/ test1/ (a wrong level is a DatasetError). Splits: train, dev -> val, test1 -> test
(subset "test1": test-P, the public test set).
Ids: pair "<identifier>", images "nlvr2-<file stem>" (shared by the items of one image pair).
"""
from __future__ import annotations

import re
from pathlib import Path

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import Builder, image_folder, parse_json_line, read_lines, require, require_param

URL = "https://github.com/lil-lab/nlvr/tree/master/nlvr2 (images: https://lil.nlp.cornell.edu/nlvr/)"
SPLITS = ("train", "dev", "test1")
SPLIT = {"train": "train", "dev": "val", "test1": "test"}
LABELS = {"True": True, "False": False}
IDENTIFIER = re.compile(r"^(?P<stem>[A-Za-z0-9]+-\d+-\d+)-\d+$")


def _parse(text: str | None) -> tuple[dict | None, str | None]:
    rec, problem = parse_json_line(text, ("identifier", "sentence", "label"))
    if problem is None and not IDENTIFIER.match(str(rec["identifier"])):
        problem = f"identifier {rec['identifier']!r} is not <split>-<set>-<pair>-<sentence>"
    return rec, problem


def build(annotations: str | None, images: str | None, *, splits: list[str], progress: bool = True) -> Prepared:
    ann = require_param(annotations, "nlvr2", "annotations", "folder of the train/dev/test1 .json files")
    files = {s: require(ann / f"{s}.json", f"{s}.json", "nlvr2", URL, "nlvr2.annotations") for s in splits}
    img_root = image_folder(images, "nlvr2", URL, "folder holding train/ dev/ test1/", holds=SPLITS)
    b = Builder(img_root, SPLITS)
    for name in SPLITS:
        if name not in splits:
            continue
        for lineno, text in tqdm(read_lines(files[name]), desc=f"nlvr2 {name}", unit="pair",
                                 disable=not progress, mininterval=1.0):
            item = f"{files[name].name}#{lineno}"
            with b.record("nlvr2", item):
                _add(b, text, item, img_root / name, name)
    return b.done("nlvr2", ann)


def _add(b: Builder, text: str | None, item: str, folder: Path, name: str) -> None:
    """One line: an nlvr2 row and its two images, or a reject with the reason."""
    rec, problem = _parse(text)
    if problem:
        b.reject("nlvr2", rec.get("identifier") if isinstance(rec, dict) and rec.get("identifier") else item, problem)
        return
    split, subset = SPLIT[name], ("test1" if name == "test1" else None)
    stem = IDENTIFIER.match(rec["identifier"])["stem"]
    if "directory" in rec:
        folder = folder / str(rec["directory"])
    ids = []
    for k in (0, 1):
        image_id = f"nlvr2-{stem}-img{k}"
        b.image(image_id, folder / f"{stem}-img{k}.png", split, subset)
        ids.append(image_id)
    label = LABELS.get(rec["label"], rec["label"]) if isinstance(rec["label"], str) else rec["label"]
    b.row("nlvr2", {"pair_id": rec["identifier"], "left_image_id": ids[0], "right_image_id": ids[1],
                    "sentence": rec["sentence"], "label": label, "split": split, "subset": subset})
