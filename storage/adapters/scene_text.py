"""Text for the synthetic `scenes` dataset, derived from a parsed `Scene` only (so it can be checked
against the ground truth): captions, VQA questions with ten annotator answers, VE hypotheses
(entailment, neutral, contradiction) and NLVR2 statements about a pair of scenes.
"""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from storage.adapters.scene_render import COLORS, RELATIONS, SHAPES, SIZES, STUFF, Scene

BACKGROUND = ("sky", "wall")
STUFF_PHRASES = {
    "sky": ("under a blue sky", "against the sky"), "wall": ("in front of a brick wall", "against a wall"),
    "grass": ("on the grass", "in the grass"), "water": ("on the water", "floating on water"),
    "sand": ("on the sand", "on sandy ground"),
}
STUFF_NOUNS = {"sky": "the sky", "wall": "a wall", "grass": "grass", "water": "water", "sand": "sand"}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

WRONG_ANSWERS_CDF = (0.85, 0.96)  # P(at most 0, 1) of the 10 VQA annotators answering wrongly; 2 at most

T = TypeVar("T")


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


def pick(rng: np.random.Generator, makers: Sequence[Callable[[Scene, np.random.Generator], T | None]],
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


def _q_attribute(scene: Scene, rng: np.random.Generator, attr: str, refs: tuple[tuple[str, ...], ...],
                 template: str, values: Sequence[str]) -> QA | None:
    """'what <attr> is the <ref>?' about a thing that `refs` names uniquely; wrong answers from `values`."""
    named = [(t, r) for t in scene.things if (r := scene.ref(t, refs))]
    if not named:
        return None
    t, ref = _choice(rng, named)
    answer = getattr(t, attr)
    return template.format(ref=ref), answer, "other", [v for v in values if v != answer]


def _q_color(scene: Scene, rng: np.random.Generator) -> QA | None:
    return _q_attribute(scene, rng, "color", (("shape",), ("size", "shape")), "what color is the {ref}?", list(COLORS))


def _q_shape(scene: Scene, rng: np.random.Generator) -> QA | None:
    return _q_attribute(scene, rng, "shape", (("color",), ("size", "color")), "what shape is the {ref} object?", SHAPES)


def _q_size(scene: Scene, rng: np.random.Generator) -> QA | None:
    return _q_attribute(scene, rng, "size", (("shape",), ("color", "shape")), "what size is the {ref}?", SIZES)


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


def annotators(rng: np.random.Generator, answer: str, wrong: list[str]) -> list[str]:
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


def hypothesis(scene: Scene, rng: np.random.Generator, label: str) -> str:
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


def pair_statement(left: Scene, right: Scene, rng: np.random.Generator, tries: int = 30) -> tuple[str, bool]:
    """A statement whose truth is a fair coin flip (drawn until one matches, within `tries`)."""
    want = bool(rng.random() < 0.5)
    for _ in range(tries):
        sentence, truth = _choice(rng, PAIR_STATEMENTS)(left, right, rng)
        if truth == want:
            break
    return sentence, bool(truth)
