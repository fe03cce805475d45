"""Scene model and rendering for the synthetic `scenes` dataset: a `Scene` of 1-3 textured stuff bands
(sky, wall, grass, water, sand) with flat-coloured shapes on top, drawn by `make_scene` as an RGB
image plus its ground-truth panoptic segment-id map and segment records (storage.maskcodec; things'
records also carry their "color" and "size", null for stuff).
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from storage import maskcodec

STUFF = ("sky", "wall", "grass", "water", "sand")  # bands are stacked in this order, top first
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 225), "yellow": (240, 215, 40),
    "purple": (140, 60, 185), "orange": (245, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20),
}
SIZES = ("small", "large")
STUFF_COLORS: dict[str, tuple[int, int, int]] = {
    "sky": (135, 190, 235), "wall": (165, 115, 95), "grass": (80, 135, 55),
    "water": (45, 100, 150), "sand": (215, 195, 145),
}
RELATIONS = ("left of", "right of", "above", "below")

RADIUS = {"small": (0.06, 0.08), "large": (0.12, 0.15)}  # fraction of the image size
PLACEMENT_TRIES = 25
MAX_OVERLAP = 0.2  # a new thing may cover at most this fraction of either thing's area
MIN_VISIBLE = 0.5  # every thing keeps at least this fraction of its own pixels
REUSE_P = 0.3  # chance a thing copies an earlier thing's shape (and, separately, colour)
RELATION_MARGIN = 0.1  # centroids this far apart (fraction of the size) make "left of" etc. clear


# ---- scene model -------------------------------------------------------------------------
@dataclass(frozen=True)
class Thing:
    shape: str
    color: str
    size: str
    cx: float  # centroid of the visible pixels
    cy: float

    def describe(self, attrs: Sequence[str] = ("color", "shape")) -> str:
        return " ".join(getattr(self, a) for a in ("size", "color", "shape") if a in attrs)


@dataclass(frozen=True)
class Scene:
    size: int
    stuff: tuple[str, ...]  # visible bands, top to bottom
    things: tuple[Thing, ...]  # drawing order (later ones on top)

    def count(self, shape: str | None = None, color: str | None = None, size: str | None = None) -> int:
        return sum((shape is None or t.shape == shape) and (color is None or t.color == color)
                   and (size is None or t.size == size) for t in self.things)

    def ref(self, t: Thing, options: Sequence[Sequence[str]] = (
            ("shape",), ("color", "shape"), ("size", "shape"), ("size", "color", "shape"))) -> str | None:
        """Shortest description (from `options`) that picks out `t` alone, or None."""
        for attrs in options:
            if self.count(**{a: getattr(t, a) for a in attrs}) == 1:
                return t.describe(attrs)
        return None

    def offset(self, a: Thing, rel: str, b: Thing) -> float:
        """How far `a` lies from `b` in direction `rel`, in units of the relation margin."""
        d = {"left of": b.cx - a.cx, "right of": a.cx - b.cx, "above": b.cy - a.cy, "below": a.cy - b.cy}[rel]
        return d / (RELATION_MARGIN * self.size)

    def holds(self, a: Thing, rel: str, b: Thing) -> bool:
        return self.offset(a, rel, b) > 1.0

    def cell(self, t: Thing, bins: int) -> tuple[int, int]:
        """(row, column) of `t`'s centroid on a bins x bins grid over the image, (0, 0) top left."""
        row, col = (min(bins - 1, int(v * bins / self.size)) for v in (t.cy, t.cx))
        return row, col

    def group(self, attr: str, value: str) -> list[Thing]:
        """The things whose `attr` is `value`."""
        return [t for t in self.things if getattr(t, attr) == value]

    def relations(self, unique_refs: bool = False) -> list[tuple[Thing, str, Thing]]:
        """Every clear (a, rel, b); with unique_refs, only between things that `ref` can name."""
        things = [t for t in self.things if not unique_refs or self.ref(t)]
        return [(a, rel, b) for a, b in itertools.permutations(things, 2) for rel in RELATIONS
                if self.holds(a, rel, b)]


# ---- drawing -----------------------------------------------------------------------------
def _star(points: int = 5, inner: float = 0.42) -> list[tuple[float, float]]:
    angles = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return list(zip((radii * np.cos(angles)).tolist(), (radii * np.sin(angles)).tolist()))


_A = 0.33  # half-width of the cross's arms
UNIT_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
    "triangle": [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)],
    "star": _star(),
    "diamond": [(0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)],
    "cross": [(-_A, -1), (_A, -1), (_A, -_A), (1, -_A), (1, _A), (_A, _A), (_A, 1), (-_A, 1),
              (-_A, _A), (-1, _A), (-1, -_A), (-_A, -_A)],
}


@functools.lru_cache(maxsize=4)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every pixel (read-only, shared)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return yy, xx


def _shape_mask(shape: str, cx: float, cy: float, r: float, n: int) -> np.ndarray:
    """Exact (aliased) boolean mask of one shape."""
    canvas = Image.new("1", (n, n))
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        draw.polygon([(cx + r * x, cy + r * y) for x, y in UNIT_POLYGONS[shape]], fill=1)
    return np.asarray(canvas)


def _stuff_bands(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    """Band index (0 = top) of every pixel and the band names: 1-3 wavy horizontal bands."""
    k = int(rng.integers(1, 4))
    names = sorted((STUFF[i] for i in rng.choice(len(STUFF), k, replace=False)), key=STUFF.index)
    heights = rng.uniform(1.0, 2.0, k)  # each band gets >= 1/5 of the height
    yy, xx = _grid(n)
    bands = np.zeros((n, n), np.int32)
    for edge in np.cumsum(heights)[:-1] / heights.sum() * n:
        amp, freq, phase = rng.uniform(0, 0.04 * n), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
        bands += yy >= edge + amp * np.sin(2 * np.pi * freq * xx / n + phase)
    return bands, names


def _attributes(rng: np.random.Generator, previous: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    """(shape, colour, size) of a new thing; sometimes repeats earlier ones so counts exceed one."""
    def pick(options: Sequence[str], index: int) -> str:
        if previous and rng.random() < REUSE_P:
            return previous[int(rng.integers(len(previous)))][index]
        return options[int(rng.integers(len(options)))]
    return pick(SHAPES, 0), pick(list(COLORS), 1), SIZES[int(rng.integers(2))]


def _fits(mask: np.ndarray, masks: list[np.ndarray], areas: list[int], top: np.ndarray) -> bool:
    """Overlap with each earlier thing is limited, and every earlier thing stays mostly visible."""
    area = int(mask.sum())
    if area == 0:
        return False
    for m, a in zip(masks, areas):
        if np.count_nonzero(m & mask) > MAX_OVERLAP * min(a, area):
            return False
    new_top = np.where(mask, len(masks), top)
    visible = np.bincount(new_top[new_top >= 0], minlength=len(masks) + 1)
    return all(visible[i] >= MIN_VISIBLE * a for i, a in enumerate(areas))


def _place_things(rng: np.random.Generator, n: int, max_things: int
                  ) -> tuple[list[tuple[str, str, str]], list[np.ndarray]]:
    """Attributes and masks of 1..max_things things; one that finds no room is left out."""
    attrs: list[tuple[str, str, str]] = []
    masks: list[np.ndarray] = []
    areas: list[int] = []
    top = np.full((n, n), -1, np.int64)  # index of the topmost thing per pixel
    for _ in range(int(rng.integers(1, max_things + 1))):
        shape, color, size = _attributes(rng, attrs)
        for _try in range(PLACEMENT_TRIES):
            r = max(2.5, n * rng.uniform(*RADIUS[size]))
            cx, cy = rng.uniform(r, n - 1 - r, 2)
            mask = _shape_mask(shape, cx, cy, r, n)
            if _fits(mask, masks, areas, top):
                top[mask] = len(masks)
                attrs.append((shape, color, size))
                masks.append(mask)
                areas.append(int(mask.sum()))
                break
    return attrs, masks


@functools.lru_cache(maxsize=4)
def _mortar(n: int) -> np.ndarray:
    """1 on the mortar lines of a brick wall, else 0 (read-only, shared)."""
    yy, xx = np.mgrid[0:n, 0:n]
    h = max(4, n // 12)
    return ((yy % h == 0) | ((xx + (yy // h) % 2 * h) % (2 * h) == 0)).astype(np.float32)


def _texture(name: str, rng: np.random.Generator, noise: np.ndarray, rows: slice, n: int) -> np.ndarray:
    """Brightness offsets for image rows `rows` giving each kind of stuff its own look."""
    yy, xx = (g[rows] for g in _grid(n))
    if name == "sky":  # lighter towards the horizon
        return 45 * yy / n + 3 * noise
    if name == "grass":  # thin vertical blades
        return 12 * noise + 12 * np.sin(xx * (2 * np.pi / 3) + noise)
    if name == "water":  # wavy horizontal ripples
        phase = rng.uniform(0, 2 * np.pi)
        return 16 * np.sin(2 * np.pi * yy / max(4.0, n / 16) + 2 * np.sin(4 * np.pi * xx / n + phase)) + 4 * noise
    if name == "sand":  # grain with dark specks
        return 9 * noise - 35 * (noise > 2.2)
    return 6 * noise - 45 * _mortar(n)[rows]  # wall


def _render(rng: np.random.Generator, ids: np.ndarray, stuff: list[str], colors: list[str]) -> np.ndarray:
    """RGB image from the id map: textured stuff (ids 1..len(stuff)), flat things after them."""
    n = ids.shape[0]
    lut = np.array([(0, 0, 0)] + [STUFF_COLORS[s] for s in stuff] + [COLORS[c] for c in colors], np.float32)
    noise = rng.standard_normal((n, n), dtype=np.float32)
    shade = 2 * noise  # faint sensor noise everywhere
    for sid, name in enumerate(stuff, start=1):
        inside = ids == sid
        rows = np.flatnonzero(inside.any(axis=1))
        band = slice(int(rows[0]), int(rows[-1]) + 1)  # textures are computed on the band's rows only
        shade[band] = np.where(inside[band], _texture(name, rng, noise[band], band, n), shade[band])
    return np.clip(np.take(lut, ids, axis=0) + shade[..., None], 0, 255).astype(np.uint8)


def make_scene(rng: np.random.Generator, n: int, max_things: int
               ) -> tuple[np.ndarray, np.ndarray, list[dict], Scene]:
    """One n x n scene: (RGB image, segment-id map, segment records, parsed Scene)."""
    bands, stuff = _stuff_bands(rng, n)
    attrs, masks = _place_things(rng, n, max_things)
    ids = bands + 1
    for j, mask in enumerate(masks):
        ids[mask] = len(stuff) + 1 + j
    area = np.bincount(ids.ravel(), minlength=len(stuff) + len(masks) + 1)
    if not area[1:len(stuff) + 1].all():  # things hid a whole band: renumber the rest
        kept = np.flatnonzero(area)
        ids = (np.searchsorted(kept, ids) + 1).astype(ids.dtype)
        stuff = [stuff[i - 1] for i in kept if i <= len(stuff)]
        area = np.bincount(ids.ravel())
    k = len(stuff)
    rgb = _render(rng, ids, stuff, [c for _, c, _ in attrs])
    yy, xx = _grid(n)
    cx = np.bincount(ids.ravel(), weights=xx.ravel()) / np.maximum(area, 1)
    cy = np.bincount(ids.ravel(), weights=yy.ravel()) / np.maximum(area, 1)
    things = tuple(Thing(s, c, z, float(cx[k + 1 + j]), float(cy[k + 1 + j])) for j, (s, c, z) in enumerate(attrs))
    categories = {i + 1: name for i, name in enumerate(stuff)} | {k + 1 + j: a[0] for j, a in enumerate(attrs)}
    segments = maskcodec.segments_from_ids(ids, categories=categories,
                                           isthing={sid: sid > k for sid in categories})
    for seg in segments:  # ground-truth attributes of things (backbone pre-training targets); null for stuff
        thing = things[seg["id"] - k - 1] if seg["id"] > k else None
        seg["color"], seg["size"] = (thing.color, thing.size) if thing else (None, None)
    return rgb, ids, segments, Scene(n, tuple(stuff), things)
