"""Segment-mask codec: a 16-bit segment-id PNG plus a segments JSON list.

Pixel value 0 is void (no segment); segments are numbered 1..n. Each segment record:
{"id", "bbox": [x1, y1, x2, y2] (pixels, inclusive-exclusive), "area", "score",
 "category" (str or null), "isthing" (bool or null)}.
"""
from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image

MAX_SEGMENTS = 65535
SEGMENT_FIELDS = ("id", "bbox", "area", "score", "category", "isthing")


class MaskCodecError(ValueError):
    """Encoded masks are malformed or inconsistent with their segment list."""


def encode_png(ids: np.ndarray) -> bytes:
    if ids.ndim != 2:
        raise MaskCodecError(f"segment-id map must be 2-D, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > MAX_SEGMENTS):
        raise MaskCodecError(f"segment ids must lie in [0, {MAX_SEGMENTS}]")
    buf = io.BytesIO()
    Image.fromarray(ids.astype(np.uint16)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # PIL raises many types for bad bytes
        raise MaskCodecError(f"unreadable segment-id PNG: {e}") from e
    return np.asarray(img, dtype=np.int64).astype(np.int32)


def segments_from_ids(ids: np.ndarray, scores: dict[int, float] | None = None,
                      categories: dict[int, str] | None = None,
                      isthing: dict[int, bool] | None = None) -> list[dict[str, Any]]:
    """Segment records (bbox, area) computed from an id map in one pass; optional per-id metadata."""
    import scipy.ndimage  # here, not at the top: the torch-free stages import this module for its error only
    areas = np.bincount(ids.ravel(), minlength=1)
    out = []
    for sid, box in enumerate(scipy.ndimage.find_objects(ids), 1):
        if box is None:
            continue
        ys, xs = box
        out.append({
            "id": sid,
            "bbox": [xs.start, ys.start, xs.stop, ys.stop],
            "area": int(areas[sid]),
            "score": float(scores.get(sid, 1.0)) if scores else 1.0,
            "category": categories.get(sid) if categories else None,
            "isthing": isthing.get(sid) if isthing else None,
        })
    return out


def encode_segments(segments: list[dict[str, Any]]) -> bytes:
    for s in segments:
        missing = [k for k in SEGMENT_FIELDS if k not in s]
        if missing:
            raise MaskCodecError(f"segment {s.get('id')} lacks fields {missing}")
    return json.dumps(segments, sort_keys=True, separators=(",", ":")).encode()


def decode_segments(data: bytes) -> list[dict[str, Any]]:
    try:
        segs = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MaskCodecError(f"unreadable segments json: {e}") from e
    if not isinstance(segs, list):
        raise MaskCodecError("segments json must be a list")
    return segs


def check_consistent(ids: np.ndarray, segments: list[dict[str, Any]]) -> None:
    """Every non-void id in the map has exactly one record with the right area, and vice versa."""
    present, counts = np.unique(ids[ids > 0], return_counts=True)
    recs = {int(s["id"]): s for s in segments}
    if len(recs) != len(segments):
        raise MaskCodecError("duplicate segment ids in segments json")
    if set(present.tolist()) != set(recs):
        raise MaskCodecError(f"id map has ids {sorted(present.tolist())[:10]}..., json has {sorted(recs)[:10]}...")
    for sid, n in zip(present.tolist(), counts.tolist()):
        if recs[sid]["area"] != n:
            raise MaskCodecError(f"segment {sid}: json area {recs[sid]['area']} != {n} pixels")
