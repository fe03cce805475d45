"""Adapter for the installed `easy-vqa` package (VQA only, 64x64 images, 13 answers).

Its own train/test split is kept; a validation split is carved from train by image
(seeded), so no validation image is seen in training. Each question has one answer; it is
stored as 10 identical annotator answers so the VQA accuracy equals exact-match accuracy.
Answer types are the official three (yes/no, other: what the VQA score groups by); the finer
question kind goes to `subset`: "color" (what color is ...), "shape" (what shape / what is the
blue shape), "yes/no color" (is there a red shape?), "yes/no shape" (does the image contain a circle?).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from storage.adapters.base import DatasetError, Prepared

YES_NO = {"yes", "no"}
SHAPES = {"circle", "rectangle", "triangle"}            # easy-vqa 1.0's answers besides yes/no: shapes ...
COLORS = {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"}   # ... and colours


def question_kind(question: str, answer: str) -> str:
    """color | shape (what the answer names) | yes/no color | yes/no shape (what the question asks about)."""
    if answer in COLORS:
        return "color"
    if answer in SHAPES:
        return "shape"
    if answer not in YES_NO:
        return "other"
    words = set(re.findall(r"[a-z]+", question.lower()))
    about = [name for name, group in (("color", COLORS), ("shape", SHAPES)) if words & group]
    return " ".join(["yes/no", "/".join(about)]) if about else "yes/no"


def _load_package():  # noqa: ANN202 - third-party module
    try:
        import easy_vqa
    except ImportError as e:
        raise DatasetError("easy_vqa dataset needs the `easy-vqa` package (pip install easy-vqa==1.0)") from e
    return easy_vqa


def build(out_dir: Path, *, val_fraction: float, seed: int, progress: bool = True) -> Prepared:
    """Copy images into `out_dir/images` and return canonical rows."""
    ev = _load_package()
    prep = Prepared()
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    sources = {
        "train": (ev.get_train_questions(), ev.get_train_image_paths()),
        "test": (ev.get_test_questions(), ev.get_test_image_paths()),
    }
    train_ids = sorted(sources["train"][1])
    rng = np.random.default_rng(seed)
    n_val = max(1, round(len(train_ids) * val_fraction))
    val_ids = set(rng.permutation(train_ids)[:n_val].tolist())

    def split_of(src: str, raw_id: int) -> str:
        return "val" if src == "train" and raw_id in val_ids else src

    for src, ((questions, answers, image_ids), paths) in sources.items():
        for raw_id in tqdm(sorted(paths), desc=f"easy_vqa {src} images", disable=not progress, mininterval=1.0):
            image_id = f"easy_vqa-{src}-{raw_id:05d}"
            rel = Path("images") / f"{image_id}.png"
            shutil.copyfile(paths[raw_id], out_dir / rel)
            prep.images.append({"image_id": image_id, "path": str(rel), "width": 0, "height": 0,
                                "split": split_of(src, raw_id)})
        for i, (q, a, raw_id) in enumerate(zip(questions, answers, image_ids)):
            prep.vqa.append({
                "question_id": f"easy_vqa-{src}-q{i:06d}",
                "image_id": f"easy_vqa-{src}-{raw_id:05d}",
                "question": q,
                "answers": [a] * 10,
                "answer_type": "yes/no" if a in YES_NO else "other",
                "split": split_of(src, raw_id),
                "subset": question_kind(q, a),
            })
    prep.given = {"images": len(prep.images), "vqa": len(prep.vqa)}
    return prep
