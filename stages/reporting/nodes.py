"""Which segments of an image became graph nodes: the ones the `features` stage kept.

`features` keeps at most `features.max_nodes` segments (the largest; ties by id) and stores one node
per kept segment, in slot order, with its geometry (geom.npy: box corners and area as fractions of the
image). The report reads those nodes back and finds each one's segment in the mask by its box and area,
so what it marks is what the shard holds; a node that no segment matches means the features are older
than the masks.
"""
from __future__ import annotations

import numpy as np

from stages.common import paths
from stages.common.cli import StageError
from storage.maskcodec import decode_png, decode_segments
from storage.shards import Sample, ShardReader, npy_load

TOLERANCE = 0.25   # pixels: geom's float32 fractions, scaled back, are within this of the integer pixels


def _in_pixels(geom: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """geom.npy's x1, y1, x2, y2, area (fractions of the image: models.graph.geometry) in pixels."""
    H, W = hw
    return geom[:, :5].astype(np.float64) * np.array([W, H, W, H, H * W])


def kept_segments(mask: Sample, nodes: Sample | None, image_id: str, dataset: str) -> list[int]:
    """Segment ids of the image's graph nodes in slot order; [] when features rejected the image."""
    if nodes is None:
        return []
    records = sorted(decode_segments(mask["segments.json"]), key=lambda r: r["id"])
    segs = np.array([[*r["bbox"], r["area"]] for r in records], np.float64).reshape(-1, 5)
    kept: list[int] = []
    for j, node in enumerate(_in_pixels(npy_load(nodes["geom.npy"]), decode_png(mask["seg.png"]).shape)):
        match = [i for i in np.flatnonzero(np.abs(segs - node).max(axis=1) <= TOLERANCE)
                 if records[i]["id"] not in kept]
        if not match:
            raise StageError(f"{dataset}: node {j} of {image_id} matches no segment of its mask: the features are "
                             f"older than the masks; rerun `dvc repro features@{dataset}`")
        kept.append(int(records[match[0]]["id"]))   # equal box and area: the lower id, as features takes it
    return kept


def graph_nodes(dataset: str, image_ids: list[str]) -> dict[str, list[int]]:
    """image id -> the segment ids that are its graph nodes."""
    with ShardReader(paths.masks(dataset)) as masks, ShardReader(paths.features(dataset)) as feats:
        return {i: kept_segments(masks.get(i), feats.get(i) if i in feats else None, i, dataset) for i in image_ids}
