"""The deterministic synthetic dataset `scenes` (DESIGN.md section 4).

Each image is 1-3 textured stuff bands (sky, wall, grass, water, sand) with 1..max_things
flat-coloured shapes on top, written with its ground-truth panoptic mask (storage.maskcodec).
All text (captions, VQA, VE, NLVR2) is derived from one parsed `Scene` (shapes, colours,
sizes, visible centroids, stuff bands), so it can be checked against the ground truth.

Determinism: image i of split s draws from numpy.random.default_rng([seed, s, i, stream]);
the scene and its text use separate streams, and no image depends on the ones before it.
"""
from __future__ import annotations

import functools
import io
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from storage import maskcodec
from storage.adapters.base import Prepared, Row
from storage.atomic import write_bytes
from storage.tables import SPLITS

STUFF = ("sky", "wall", "grass", "water", "sand")  # bands are stacked in this order, top first
BACKGROUND = ("sky", "wall")
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
STUFF_PHRASES = {
    "sky": ("under a blue sky", "against the sky"), "wall": ("in front of a brick wall", "against a wall"),
    "grass": ("on the grass", "in the grass"), "water": ("on the water", "floating on water"),
    "sand": ("on the sand", "on sandy ground"),
}
STUFF_NOUNS = {"sky": "the sky", "wall": "a wall", "grass": "grass", "water": "water", "sand": "sand"}
RELATIONS = ("left of", "right of", "above", "below")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

RADIUS = {"small": (0.06, 0.08), "large": (0.12, 0.15)}  # fraction of the image size
PLACEMENT_TRIES = 25
MAX_OVERLAP = 0.2  # a new thing may cover at most this fraction of either thing's area
MIN_VISIBLE = 0.5  # every thing keeps at least this fraction of its own pixels
REUSE_P = 0.3  # chance a thing copies an earlier thing's shape (and, separately, colour)
RELATION_MARGIN = 0.1  # centroids this far apart (fraction of the size) make "left of" etc. clear
WRONG_ANSWERS_CDF = (0.85, 0.96)  # P(at most 0, 1) of the 10 VQA annotators answering wrongly; 2 at most
SCENE_STREAM, TEXT_STREAM, PAIR_STREAM = 0, 1, 2

T = TypeVar("T")


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
    return rgb, ids, segments, Scene(n, tuple(stuff), things)


# ---- language helpers --------------------------------------------------------------------
def _choice(rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def _plural(phrase: str) -> str:
    return phrase + ("es" if phrase.endswith("s") else "s")


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _counted(n: int, phrase: str) -> str:
    """'one star', 'two red circles'."""
    return f"{_number(n)} {phrase if n == 1 else _plural(phrase)}"


def _there_are(n: int, phrase: str) -> str:
    if n == 0:
        return f"there are no {_plural(phrase)}"
    return f"there {'is' if n == 1 else 'are'} {'exactly ' if n > 1 else ''}{_counted(n, phrase)}"


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _stuff_phrase(scene: Scene, rng: np.random.Generator) -> str:
    return _choice(rng, STUFF_PHRASES[_choice(rng, scene.stuff)])


def _wrong_count(rng: np.random.Generator, n: int) -> int:
    return _choice(rng, [m for m in (n - 1, n + 1, n + 2) if m >= 0])


def _absent_pair(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """A (colour, shape) with no such thing; the shape is one that is present when possible."""
    shape = _choice(rng, [t.shape for t in scene.things])
    colors = [c for c in COLORS if not scene.count(shape=shape, color=c)]
    return _choice(rng, colors), shape


def _pick(rng: np.random.Generator, makers: Sequence[Callable[[Scene, np.random.Generator], T | None]],
          scene: Scene, k: int, key: Callable[[T], str], rounds: int = 4) -> list[T]:
    """k items from makers tried in seeded order, distinct by key when possible."""
    out: list[T] = []
    seen: set[str] = set()
    for _ in range(rounds if k else 0):
        for i in rng.permutation(len(makers)):
            item = makers[i](scene, rng)
            if item is not None and key(item) not in seen:
                seen.add(key(item))
                out.append(item)
                if len(out) == k:
                    return out
    return [out[i % len(out)] for i in range(k)] if out else []


# ---- captions ----------------------------------------------------------------------------
def _cap_inventory(scene: Scene, rng: np.random.Generator) -> str:
    groups = Counter(t.describe() for t in scene.things)
    parts = [_a(d) if n == 1 else _counted(n, d) for d, n in groups.items()]
    return _sentence(f"{_join(parts)} {_stuff_phrase(scene, rng)}")


def _cap_shape_count(scene: Scene, rng: np.random.Generator) -> str:
    shape = _choice(rng, [t.shape for t in scene.things])
    n = scene.count(shape=shape)
    return _sentence(f"there {'is' if n == 1 else 'are'} {_counted(n, shape)} in the picture")


def _cap_total(scene: Scene, rng: np.random.Generator) -> str:
    return _sentence(f"a scene with {_counted(len(scene.things), 'object')} {_stuff_phrase(scene, rng)}")


def _cap_relation(scene: Scene, rng: np.random.Generator) -> str | None:
    triples = scene.relations()
    if not triples:
        return None
    a, rel, b = _choice(rng, triples)
    return _sentence(f"{_a(a.describe())} {rel} {_a(b.describe())}")


def _cap_stuff(scene: Scene, rng: np.random.Generator) -> str:
    t = _choice(rng, scene.things)
    return _sentence(f"{_a(t.describe(('size', 'color', 'shape')))} {_stuff_phrase(scene, rng)}")


def _cap_sizes(scene: Scene, rng: np.random.Generator) -> str:
    kinds = Counter(t.describe(("size", "color", "shape")) for t in scene.things)
    if len(kinds) == 1:
        desc, n = kinds.popitem()
        return _sentence(f"{_a(desc) if n == 1 else _counted(n, desc)} on {'its' if n == 1 else 'their'} own")
    pair = rng.choice(len(kinds), 2, replace=False)
    return _sentence(_join([_a(list(kinds)[i]) for i in sorted(pair)]))


def _cap_colors(scene: Scene, rng: np.random.Generator) -> str:
    colors = list(dict.fromkeys(t.color for t in scene.things))
    what = _a(f"{colors[0]} shape") if len(scene.things) == 1 else f"{_join(colors)} shapes"
    return _sentence(f"{what} {_stuff_phrase(scene, rng)}")


CAPTIONS = (_cap_inventory, _cap_shape_count, _cap_total, _cap_relation, _cap_stuff, _cap_sizes, _cap_colors)


# ---- VQA: each maker returns (question, answer, answer_type, plausible wrong answers) ---------
QA = tuple[str, str, str, list[str]]


def _q_yes_no(scene: Scene, rng: np.random.Generator) -> QA | None:
    yes = bool(rng.random() < 0.5)
    form = int(rng.integers(3))
    if form == 0:
        color, shape = _choice(rng, scene.things).describe().split() if yes else _absent_pair(scene, rng)
        question = f"is there {_a(f'{color} {shape}')}?"
    elif form == 1:
        present = {t.shape for t in scene.things}
        shapes = sorted(present) if yes else [s for s in SHAPES if s not in present]
        if not shapes:
            return None
        question = f"are there any {_plural(_choice(rng, shapes))}?"
    else:
        triples = scene.relations(unique_refs=True)
        if not triples:
            return None
        a, rel, b = _choice(rng, triples)
        question = f"is the {scene.ref(a)} {rel if yes else OPPOSITE[rel]} the {scene.ref(b)}?"
    return question, "yes" if yes else "no", "yes/no", ["no" if yes else "yes"]


def _q_count(scene: Scene, rng: np.random.Generator) -> QA:
    form = int(rng.integers(3))
    present = rng.random() < 0.7  # mostly ask about something that is there
    if form == 0:
        shape = _choice(rng, [t.shape for t in scene.things] if present else SHAPES)
        question, n = f"how many {_plural(shape)} are there?", scene.count(shape=shape)
    elif form == 1:
        color = _choice(rng, [t.color for t in scene.things] if present else list(COLORS))
        question, n = f"how many {color} objects are there?", scene.count(color=color)
    else:
        question, n = "how many objects are there?", len(scene.things)
    return question, str(n), "number", [str(m) for m in (n - 1, n + 1) if m >= 0]


def _q_color(scene: Scene, rng: np.random.Generator) -> QA | None:
    named = [(t, r) for t in scene.things if (r := scene.ref(t, (("shape",), ("size", "shape"))))]
    if not named:
        return None
    t, ref = _choice(rng, named)
    return f"what color is the {ref}?", t.color, "other", [c for c in COLORS if c != t.color]


def _q_shape(scene: Scene, rng: np.random.Generator) -> QA | None:
    named = [(t, r) for t in scene.things if (r := scene.ref(t, (("color",), ("size", "color"))))]
    if not named:
        return None
    t, ref = _choice(rng, named)
    return f"what shape is the {ref} object?", t.shape, "other", [s for s in SHAPES if s != t.shape]


def _q_size(scene: Scene, rng: np.random.Generator) -> QA | None:
    named = [(t, r) for t in scene.things if (r := scene.ref(t, (("shape",), ("color", "shape"))))]
    if not named:
        return None
    t, ref = _choice(rng, named)
    return f"what size is the {ref}?", t.size, "other", [s for s in SIZES if s != t.size]


def _q_spatial(scene: Scene, rng: np.random.Generator) -> QA | None:
    """'what is left of the square?' when the things there share one shape and none is borderline."""
    options = []
    for ref_thing, rel in itertools.product(scene.things, RELATIONS):
        ref = scene.ref(ref_thing)
        offsets = [scene.offset(t, rel, ref_thing) for t in scene.things if t is not ref_thing]
        shapes = {t.shape for t in scene.things if t is not ref_thing and scene.holds(t, rel, ref_thing)}
        if ref and len(shapes) == 1 and not any(0 < o <= 1 for o in offsets):
            options.append((f"what is {rel} the {ref}?", shapes.pop()))
    if not options:
        return None
    question, shape = _choice(rng, options)
    return question, shape, "other", [s for s in SHAPES if s != shape]


def _q_stuff(scene: Scene, rng: np.random.Generator) -> QA:
    top, bottom = scene.stuff[0], scene.stuff[-1]
    options = [("what is at the bottom of the picture?", bottom)]
    if bottom in ("grass", "sand"):
        options.append(("what is the ground made of?", bottom))
    if top in BACKGROUND:
        options.append(("what is in the background?", top))
    question, answer = _choice(rng, options)
    return question, answer, "other", [s for s in STUFF if s != answer]


VQA_MAKERS = (_q_yes_no, _q_yes_no, _q_count, _q_count, _q_color, _q_shape, _q_size, _q_spatial, _q_stuff)


def _annotators(rng: np.random.Generator, answer: str, wrong: list[str]) -> list[str]:
    """Ten answers: the true one, with a small chance that one or two annotators err."""
    answers = [answer] * 10
    u = rng.random()
    n_wrong = sum(u >= c for c in WRONG_ANSWERS_CDF) if wrong else 0
    for i in rng.permutation(10)[:n_wrong]:
        answers[int(i)] = _choice(rng, wrong)
    return answers


# ---- VE: statements that are true (entailment) or false (contradiction) --------------------
def _st_exists(scene: Scene, rng: np.random.Generator, truth: bool) -> str:
    phrase = _choice(rng, scene.things).describe() if truth else " ".join(_absent_pair(scene, rng))
    return _sentence(f"there is {_a(phrase)}")


def _st_count(scene: Scene, rng: np.random.Generator, truth: bool) -> str:
    shape = _choice(rng, [t.shape for t in scene.things] if rng.random() < 0.8 else SHAPES)
    n = scene.count(shape=shape)
    return _sentence(_there_are(n if truth else _wrong_count(rng, n), shape))


def _st_total(scene: Scene, rng: np.random.Generator, truth: bool) -> str:
    n = len(scene.things)
    return _sentence(f"{_there_are(n if truth else _wrong_count(rng, n), 'object')} in the picture")


def _st_relation(scene: Scene, rng: np.random.Generator, truth: bool) -> str | None:
    triples = scene.relations(unique_refs=True)
    if not triples:
        return None
    a, rel, b = _choice(rng, triples)
    return _sentence(f"the {scene.ref(a)} is {rel if truth else OPPOSITE[rel]} the {scene.ref(b)}")


def _st_stuff(scene: Scene, rng: np.random.Generator, truth: bool) -> str:
    name = _choice(rng, scene.stuff if truth else [s for s in STUFF if s not in scene.stuff])
    return _sentence(f"the picture shows {STUFF_NOUNS[name]}")


def _st_size(scene: Scene, rng: np.random.Generator, truth: bool) -> str | None:
    t = _choice(rng, scene.things)
    size = t.size if truth else next(s for s in SIZES if s != t.size)
    if not truth and scene.count(shape=t.shape, size=size):
        return None
    return _sentence(f"there is a {size} {t.shape}")


STATEMENTS = (_st_exists, _st_count, _st_total, _st_relation, _st_stuff, _st_size)

NEUTRAL_TEMPLATES = (
    "the {thing} is made of {material}", "the photo was taken in {season}",
    "the {thing} was painted by {person}", "the {thing} is heavier than it looks",
    "someone put the {thing} there on purpose", "the {thing} belongs to {person}",
    "the {thing} is slowly moving to the {side}", "the {thing} is hollow inside",
    "{stuff_fact}",
)
STUFF_FACTS = {"sky": "it will rain later today", "wall": "the wall is a hundred years old",
               "grass": "the grass was cut yesterday", "water": "the water is cold", "sand": "the sand is hot"}


def _neutral(scene: Scene, rng: np.random.Generator) -> str:
    """A statement the image can neither confirm nor refute."""
    return _sentence(_choice(rng, NEUTRAL_TEMPLATES).format(
        thing=_choice(rng, scene.things).describe(),
        material=_choice(rng, ("wood", "plastic", "rubber", "metal", "paper", "glass")),
        season=_choice(rng, ("spring", "summer", "autumn", "winter")),
        person=_choice(rng, ("a child", "a teacher", "an artist", "a robot")),
        side=_choice(rng, ("left", "right")),
        stuff_fact=STUFF_FACTS[_choice(rng, scene.stuff)]))


def _hypothesis(scene: Scene, rng: np.random.Generator, label: str) -> str:
    if label == "neutral":
        return _neutral(scene, rng)
    for i in rng.permutation(len(STATEMENTS)):
        text = STATEMENTS[i](scene, rng, label == "entailment")
        if text:
            return text
    raise AssertionError("_st_exists always yields a statement")


# ---- NLVR2: a statement about two scenes, returned with its truth --------------------------
def _shape_of(left: Scene, right: Scene, rng: np.random.Generator) -> str:
    """A shape from either image, or now and then any shape."""
    return _choice(rng, [t.shape for t in left.things + right.things] if rng.random() < 0.8 else SHAPES)


def _nl_more(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    shape = _shape_of(left, right, rng)
    if rng.random() < 0.5:
        return (f"The left image contains more {_plural(shape)} than the right image.",
                left.count(shape=shape) > right.count(shape=shape))
    return "The right image contains more objects than the left image.", len(right.things) > len(left.things)


def _nl_both_color(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    color = _choice(rng, [t.color for t in left.things + right.things])
    return f"Both images contain {_a(color)} object.", bool(left.count(color=color) and right.count(color=color))


def _nl_stuff(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    name = _choice(rng, STUFF)
    if rng.random() < 0.5:
        return f"Exactly one image has {STUFF_NOUNS[name]}.", (name in left.stuff) != (name in right.stuff)
    return f"Both images show {STUFF_NOUNS[name]}.", name in left.stuff and name in right.stuff


def _nl_total(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    shape = _shape_of(left, right, rng)
    n = left.count(shape=shape) + right.count(shape=shape)
    claim = n if rng.random() < 0.5 else _wrong_count(rng, n)
    return _sentence(f"{_there_are(claim, shape)} in the two images"), claim == n


def _nl_only_left(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    color, shape = _choice(rng, left.things + right.things).describe().split()
    return (f"The left image has {_a(f'{color} {shape}')} but the right image does not.",
            bool(left.count(shape=shape, color=color)) and not right.count(shape=shape, color=color))


def _nl_neither(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    shape = _choice(rng, SHAPES)
    return f"Neither image contains {_a(shape)}.", not (left.count(shape=shape) or right.count(shape=shape))


PAIR_STATEMENTS = (_nl_more, _nl_both_color, _nl_stuff, _nl_total, _nl_only_left, _nl_neither)


def _pair_statement(left: Scene, right: Scene, rng: np.random.Generator, tries: int = 30) -> tuple[str, bool]:
    """A statement whose truth is a fair coin flip (drawn until one matches, within `tries`)."""
    want = bool(rng.random() < 0.5)
    for _ in range(tries):
        sentence, truth = _choice(rng, PAIR_STATEMENTS)(left, right, rng)
        if truth == want:
            break
    return sentence, bool(truth)


# ---- rows --------------------------------------------------------------------------------
def _text_rows(prep: Prepared, scene: Scene, image_id: str, split: str, rng: np.random.Generator,
               captions: int, questions: int, ve: int) -> None:
    for j, text in enumerate(_pick(rng, CAPTIONS, scene, captions, key=str)):
        prep.captions.append({"caption_id": f"{image_id}-c{j}", "image_id": image_id, "text": text, "split": split})
    for j, (question, answer, kind, wrong) in enumerate(_pick(rng, VQA_MAKERS, scene, questions, key=lambda q: q[0])):
        prep.vqa.append({"question_id": f"{image_id}-q{j}", "image_id": image_id, "question": question,
                         "answers": _annotators(rng, answer, wrong), "answer_type": kind, "split": split})
    labels = rng.permutation(["entailment", "neutral", "contradiction"]).tolist()
    for j in range(ve):
        label = labels[j % 3]
        prep.ve.append({"pair_id": f"{image_id}-e{j}", "image_id": image_id,
                        "hypothesis": _hypothesis(scene, rng, label), "label": label, "split": split})


def _pair_rows(scenes: list[Scene], split: str, n_pairs: int, seed: int, split_index: int) -> list[Row]:
    rows = []
    for k in range(n_pairs):
        rng = np.random.default_rng([seed, split_index, k, PAIR_STREAM])
        i, j = rng.choice(len(scenes), 2, replace=False) if len(scenes) > 1 else (0, 0)
        sentence, label = _pair_statement(scenes[i], scenes[j], rng)
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
