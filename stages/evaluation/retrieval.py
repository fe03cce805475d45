"""Image-text retrieval figures as ALBEF and UNITER report them: R@1/5/10 image->text (a hit when any
of the image's captions is in the top K) and text->image, and RSUM, the sum of the six. COCO's 5K
Karpathy test also has a 1K figure: the mean over its five 1K folds, each ranked on its own.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from stages.evaluation.metrics import chance_recall, recall_at_k

KS = (1, 5, 10)
FOLD = re.compile(r"^fold\d+$")


def recalls(i2t: np.ndarray, t2i: np.ndarray, cap_img: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """i2t_r<K>, t2i_r<K> and rsum of an images x captions and a captions x images score matrix;
    cap_img[c] is caption c's image (a row of i2t)."""
    if i2t.shape != (t2i.shape[1], t2i.shape[0]) or i2t.shape[1] != len(cap_img):
        raise ValueError(f"score matrices {i2t.shape} and {t2i.shape} do not fit {len(cap_img)} captions")
    gt_i2t = [set(np.flatnonzero(cap_img == i).tolist()) for i in range(i2t.shape[0])]
    r_i2t = recall_at_k(i2t, gt_i2t, ks)
    r_t2i = recall_at_k(t2i, [{int(i)} for i in cap_img], ks)
    out = {f"i2t_r{k}": v for k, v in r_i2t.items()} | {f"t2i_r{k}": v for k, v in r_t2i.items()}
    out["rsum"] = sum(r_i2t.values()) + sum(r_t2i.values())
    return out


def chance(n_images: int, n_captions: int, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """The figures of a random ranking (captions spread evenly over the images)."""
    per_image = round(n_captions / n_images)
    out = {f"i2t_r{k}": chance_recall(k, n_captions, per_image) for k in ks}
    out |= {f"t2i_r{k}": chance_recall(k, n_images) for k in ks}
    out["rsum"] = sum(out.values())
    return out


def folds(subsets: Sequence[str | None]) -> dict[str, np.ndarray]:
    """Image indices of each 1K fold by the images' subsets ("fold0".."fold4"); {} when none is marked.
    Some images marked and others not is an error (the mean would leave those out)."""
    marked = [bool(s and FOLD.match(s)) for s in subsets]
    if not any(marked):
        return {}
    if not all(marked):
        raise ValueError(f"{marked.count(False)} of {len(subsets)} test images have no fold (subset fold0..fold4)")
    out: dict[str, list[int]] = {}
    for i, s in enumerate(subsets):
        out.setdefault(str(s), []).append(i)
    return {f: np.array(out[f]) for f in sorted(out, key=lambda f: int(f[4:]))}


def fold_captions(cap_img: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The captions of `images` (global indices) and each one's image as a position in `images`."""
    pos = {int(g): j for j, g in enumerate(images)}
    caps = [c for c, i in enumerate(cap_img.tolist()) if i in pos]
    return np.array(caps, dtype=np.int64), np.array([pos[int(cap_img[c])] for c in caps], dtype=np.int64)


def mean_over(figures: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of per-fold figures (rsum included: the mean of the folds' sums)."""
    if not figures:
        raise ValueError("no folds to average")
    return {k: sum(f[k] for f in figures) / len(figures) for k in figures[0]}
