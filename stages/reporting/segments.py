"""Segment overlays as arrays: every segment its own colour, the segments that are not graph nodes hatched.

No single outline colour (a yellow outline hides yellow objects): each segment is tinted with a colour
of its own, hues spread by the golden angle so that neighbouring ids differ, and bordered in that
colour at full strength. Segments that did not become graph nodes get grey diagonal stripes.
"""
from __future__ import annotations

import colorsys

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

TINT = 0.5                       # share of the segment colour in a segment's pixels
HATCH = (128, 128, 128)          # stripes over segments that are not nodes
HATCH_PERIOD, HATCH_WIDTH = 6, 2


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours (uint8): hues by the golden angle, alternating two brightness levels."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    rgb = [colorsys.hsv_to_rgb(h, 0.85, 1.0 if i % 2 == 0 else 0.7) for i, h in enumerate(hues)]
    return np.round(np.array(rgb, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def overlay(image: np.ndarray, ids: np.ndarray, nodes: list[int]) -> np.ndarray:
    """`image` (H x W x 3 uint8) with segment `ids` (H x W, 0 = void) coloured; non-nodes hatched."""
    present = [int(s) for s in np.unique(ids) if s > 0]
    lut = np.zeros((int(ids.max()) + 1, 3), np.uint8)
    lut[present] = palette(len(present))
    colour = lut[ids].astype(np.float64)
    out = image.astype(np.float64)
    seg = ids > 0
    out[seg] = (1 - TINT) * out[seg] + TINT * colour[seg]
    border = find_boundaries(ids, mode="inner") & seg
    out[border] = colour[border]
    yy, xx = np.indices(ids.shape)
    stripes = ((xx + yy) % HATCH_PERIOD < HATCH_WIDTH) & seg & ~np.isin(ids, nodes)
    out[stripes] = HATCH
    return np.round(out).astype(np.uint8)


def node_centres(ids: np.ndarray, nodes: list[int]) -> list[tuple[float, float]]:
    """(x, y) of a pixel inside each node segment, near its centre of mass (for the slot label)."""
    out = []
    for sid in nodes:
        inside = ids == sid
        cy, cx = ndimage.center_of_mass(inside)
        ys, xs = np.nonzero(inside)
        j = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))   # a concave segment's centre may lie outside it
        out.append((float(xs[j]), float(ys[j])))
    return out
