"""The deterministic synthetic dataset `scenes` (DESIGN.md section 4): `generate` writes each image
(scene_render) with its ground-truth panoptic mask and the rows of every table, whose text
(scene_text) comes from the same parsed `Scene`. Image i of split s draws from
numpy.random.default_rng([seed, s, i, stream]); scene and text use separate streams, and no image
depends on the ones before it.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from storage import maskcodec
from storage.adapters.base import Prepared, Row
from storage.adapters.scene_render import COLORS, SHAPES, STUFF, Scene, make_scene
from storage.adapters.scene_text import CAPTIONS, VQA_MAKERS, annotators, hypotheses, pair_statement, pick
from storage.atomic import write_bytes
from storage.tables import SPLITS

__all__ = ["COLORS", "SHAPES", "STUFF", "generate", "make_scene"]

SCENE_STREAM, TEXT_STREAM, PAIR_STREAM = 0, 1, 2


# ---- rows --------------------------------------------------------------------------------
def _text_rows(prep: Prepared, scene: Scene, image_id: str, split: str, rng: np.random.Generator,
               captions: int, questions: int, ve: int) -> None:
    for j, text in enumerate(pick(rng, CAPTIONS, scene, captions, key=str)):
        prep.captions.append({"caption_id": f"{image_id}-c{j}", "image_id": image_id, "text": text, "split": split})
    for j, (question, answer, kind, wrong) in enumerate(pick(rng, VQA_MAKERS, scene, questions, key=lambda q: q[0])):
        prep.vqa.append({"question_id": f"{image_id}-q{j}", "image_id": image_id, "question": question,
                         "answers": annotators(rng, answer, wrong), "answer_type": kind, "split": split})
    for j, (text, label) in enumerate(hypotheses(scene, rng, ve)):
        prep.ve.append({"pair_id": f"{image_id}-e{j}", "image_id": image_id, "hypothesis": text, "label": label,
                        "split": split})


def _pair_rows(scenes: list[Scene], split: str, n_pairs: int, seed: int, split_index: int) -> list[Row]:
    rows = []
    for k in range(n_pairs):
        rng = np.random.default_rng([seed, split_index, k, PAIR_STREAM])
        i, j, sentence, label = pair_statement(scenes, rng)
        rows.append({"pair_id": f"scenes-{split}-p{k:06d}", "left_image_id": f"scenes-{split}-{i:06d}",
                     "right_image_id": f"scenes-{split}-{j:06d}", "sentence": sentence, "label": label,
                     "split": split})
    return rows


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _check_args(seed: int, image_size: int, splits: dict[str, int], counts: dict[str, float]) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
    if not splits:
        raise ValueError(f"splits must name at least one of {', '.join(SPLITS)}")
    for name, n in splits.items():
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"split {name!r} must have a positive number of images, got {n!r}")
    for name, n in counts.items():
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n!r}")
    if counts["max_things"] < 1:
        raise ValueError(f"max_things must be >= 1, got {counts['max_things']!r}")


def generate(out_dir: Path, *, seed: int, image_size: int, splits: dict[str, int],
             captions_per_image: int = 5, questions_per_image: int = 6,
             ve_per_image: int = 3, nlvr2_per_image: float = 1.0,
             max_things: int = 5, progress: bool = True) -> Prepared:
    """Write images/ and gt/ under out_dir and return the rows of every table."""
    _check_args(seed, image_size, splits, {
        "captions_per_image": captions_per_image, "questions_per_image": questions_per_image,
        "ve_per_image": ve_per_image, "nlvr2_per_image": nlvr2_per_image, "max_things": max_things})
    out_dir = Path(out_dir)
    prep = Prepared()
    with tqdm(total=sum(splits.values()), desc="scenes", unit="img", disable=not progress, mininterval=1.0) as bar:
        for split_index, split in enumerate(SPLITS):
            if split not in splits:
                continue
            scenes = []
            for i in range(splits[split]):
                image_id = f"scenes-{split}-{i:06d}"
                rgb, ids, segments, scene = make_scene(
                    np.random.default_rng([seed, split_index, i, SCENE_STREAM]), image_size, max_things)
                path = out_dir / "images" / f"{image_id}.png"
                write_bytes(path, _png(rgb))
                write_bytes(out_dir / "gt" / f"{image_id}.png", maskcodec.encode_png(ids))
                write_bytes(out_dir / "gt" / f"{image_id}.json", maskcodec.encode_segments(segments))
                prep.images.append({"image_id": image_id, "path": str(path), "width": image_size,
                                    "height": image_size, "split": split})
                _text_rows(prep, scene, image_id, split, np.random.default_rng([seed, split_index, i, TEXT_STREAM]),
                           captions_per_image, questions_per_image, ve_per_image)
                scenes.append(scene)
                bar.update()
            prep.nlvr2 += _pair_rows(scenes, split, round(len(scenes) * nlvr2_per_image), seed, split_index)
    prep.given = {name: len(rows) for name, rows in prep.tables().items()}
    return prep
