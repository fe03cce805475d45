"""Text for the synthetic `scenes` dataset, derived from a parsed `Scene` only (so it can be checked
against the ground truth): captions, VQA questions with ten annotator answers, VE hypotheses and
NLVR2 statements about a pair of scenes.

Captions name every thing with its size, colour and shape (and, in small scenes, where it lies) plus
every band of stuff, so that two scenes rarely share one. The task texts do not give their answers
away: slot values (colours, shapes, sizes, stuff, relations) are exchangeable, a VQA yes/no template
is chosen before its answer, a VE template independently of its label, and an NLVR2 statement before
the pair of images it is made true or false of.
"""
from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

from storage.adapters.scene_render import COLORS, RELATIONS, SHAPES, SIZES, STUFF, Scene, Thing
from storage.tables import VE_LABELS

BACKGROUND = ("sky", "wall")
STUFF_PHRASES = {
    "sky": ("under a blue sky", "against the sky"), "wall": ("in front of a brick wall", "against a wall"),
    "grass": ("on the grass", "in the grass"), "water": ("on the water", "floating on water"),
    "sand": ("on the sand", "on sandy ground"),
}
STUFF_NOUNS = {"sky": "the sky", "wall": "a wall", "grass": "grass", "water": "water", "sand": "sand"}
GROUND = {"wall": "in front of a wall", "grass": "on grass", "water": "on water", "sand": "on sand"}  # lowest band
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
GRID3 = {(0, 0): "in the top left corner", (0, 1): "at the top", (0, 2): "in the top right corner",
         (1, 0): "on the left", (1, 1): "in the centre", (1, 2): "on the right",
         (2, 0): "in the bottom left corner", (2, 1): "at the bottom", (2, 2): "in the bottom right corner"}
GRID5_ROWS = ("near the top", "high up", "halfway down", "low down", "near the bottom")
GRID5_COLS = ("at the far left", "left of centre", "in the middle", "right of centre", "at the far right")
VALUES: dict[str, Sequence[str]] = {"color": tuple(COLORS), "shape": SHAPES, "size": SIZES}
ALL_THINGS = tuple(map(" ".join, itertools.product(SIZES, COLORS, SHAPES)))  # every 'large red circle'

MAX_CAPTION_TOKENS = 36  # max_text_len 40 less [CLS], [SEP] and a margin of two
WRONG_ANSWERS_CDF = (0.85, 0.96)  # P(at most 0, 1) of the 10 VQA annotators answering wrongly; 2 at most
BIG_COUNT_P = 0.75  # chance a count question asks for a count above one where there is one: zero and one fit
# almost every scene, larger counts only some, so choosing evenly among the counts a scene has lets zero dominate
PAIR_TRIES, PAIR_ROUNDS = 100, 5  # image pairs drawn per NLVR2 statement, statements drawn per row

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


def _tokens(text: str) -> int:
    """WordPiece length of a caption (whole vocabulary words): one token per word and per comma, colon or stop."""
    return len(text.split()) + text.count(",") + text.count(":") + text.count(".")


def _fit(rng: np.random.Generator, tiers: Iterable[Sequence[str]]) -> str:
    """One text within the caption length from the first tier that has one (later tiers are not built), else the
    shortest of the last."""
    for texts in tiers:
        if fitting := [t for t in texts if _tokens(t) <= MAX_CAPTION_TOKENS]:
            return _choice(rng, fitting)
    return min(texts, key=_tokens)


def _absent_pair(scene: Scene, rng: np.random.Generator) -> list[str]:
    """[colour, shape] of no thing, the shape that of a thing; [] when that shape comes in every colour."""
    shape = _choice(rng, [t.shape for t in scene.things])
    colors = [c for c in COLORS if not scene.count(shape=shape, color=c)]
    return [_choice(rng, colors), shape] if colors else []


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


# ---- captions: every thing (size, colour, shape), every band of stuff; places in small scenes ----
def _desc(t: Thing) -> str:
    return t.describe(("size", "color", "shape"))


def _place(scene: Scene, t: Thing) -> str:
    """Where `t` lies: on a 5 x 5 grid when it is alone (its place then tells most such scenes apart), else 3 x 3."""
    if len(scene.things) > 1:
        return GRID3[scene.cell(t, 3)]
    row, col = scene.cell(t, 5)
    return "in the very centre" if (row, col) == (2, 2) else f"{GRID5_ROWS[row]} {GRID5_COLS[col]}"


def _grouped(things: Sequence[Thing], attrs: Sequence[str] = ("size", "color", "shape")) -> str:
    """'two large red circles and a small star'."""
    groups = Counter(t.describe(attrs) for t in things)
    return _join([_a(d) if n == 1 else _counted(n, d) for d, n in groups.items()])


def _things(scene: Scene) -> list[str]:
    """All things, most telling phrasing first: each with its place when there are one or two (too few for the
    list alone to tell scenes apart), else grouped by description, then (for long lists) by less of it."""
    if len(scene.things) < 3:
        return [_join([f"{_a(_desc(t))} {_place(scene, t)}" for t in scene.things])]
    return [_grouped(scene.things, attrs) for attrs in (("size", "color", "shape"), ("color", "shape"), ("shape",))]


def _others(scene: Scene, shown: Sequence[Thing]) -> list[str]:
    """Ways to mention the things not in `shown`, most telling first: ', plus a large red circle and two stars'."""
    rest = [t for t in scene.things if all(t is not s for s in shown)]
    if not rest:
        return [""]
    return [f", plus {_grouped(rest)}", f", plus {_grouped(rest, ('shape',))}",
            f" among {_counted(len(scene.things), 'shape')}"]


def _stuff_clauses(scene: Scene) -> list[str]:
    """Every band of stuff, top to bottom, in a few phrasings."""
    nouns = [STUFF_NOUNS[s] for s in scene.stuff]
    if len(nouns) == 1:
        return list(STUFF_PHRASES[scene.stuff[0]])
    return [f"with {_join(nouns)} from top to bottom", f"with {nouns[0]} above {_join(nouns[1:])}",
            f"{GROUND[scene.stuff[-1]]} below {_join(nouns[:-1])}"]


def _with_stuff(rng: np.random.Generator, scene: Scene, heads: Sequence[str]) -> str:
    """'<head>, <stuff>.' from the first head (most telling first) that fits with some phrasing of the stuff."""
    return _fit(rng, ([_sentence(f"{head}, {clause}") for clause in _stuff_clauses(scene)] for head in heads))


def _cap_inventory(scene: Scene, rng: np.random.Generator) -> str:
    return _with_stuff(rng, scene, _things(scene))


def _cap_count(scene: Scene, rng: np.random.Generator) -> str:
    heads = [_counted(len(scene.things), word) for word in ("shape", "object")]
    return _fit(rng, ([_sentence(f"{head} {clause}: {things}") for head in heads for clause in _stuff_clauses(scene)]
                       for things in _things(scene)))


def _cap_view(scene: Scene, rng: np.random.Generator) -> str:
    nouns = [STUFF_NOUNS[s] for s in scene.stuff]
    views = ([f"a view of {nouns[0]}", f"a picture of {nouns[0]}"] if len(nouns) == 1 else
             [f"{nouns[0]} above {_join(nouns[1:])}", f"{_join(nouns)} from top to bottom"])
    return _fit(rng, ([_sentence(f"{view}, with {things}") for view in views] for things in _things(scene)))


def _placed(scene: Scene, things: Sequence[Thing]) -> str:
    """'in the top left corner there is a large red circle and at the bottom a small star'."""
    return _join([f"{_place(scene, t)} {'there is ' if k == 0 else ''}{_a(_desc(t))}" for k, t in enumerate(things)])


def _cap_places(scene: Scene, rng: np.random.Generator) -> str:
    """Where up to three things lie (two when three do not fit), then the others."""
    things = list(scene.things)
    shown = things if len(things) <= 3 else [things[i] for i in sorted(rng.choice(len(things), 2, replace=False))]
    subsets = [shown, shown[:2]] if len(shown) == 3 else [shown]
    return _with_stuff(rng, scene, [_placed(scene, sub) + other for sub in subsets for other in _others(scene, sub)])


def _cap_relation(scene: Scene, rng: np.random.Generator) -> str | None:
    triples = scene.relations()
    if not triples:
        return None
    a, rel, b = _choice(rng, triples)
    head = f"{_a(_desc(a))} {'to the ' if 'of' in rel else ''}{rel} {_a(_desc(b))}"
    return _with_stuff(rng, scene, [head + other for other in _others(scene, (a, b))])


CAPTIONS = (_cap_inventory, _cap_count, _cap_view, _cap_places, _cap_relation)


# ---- VQA: each maker returns (question, answer, answer_type, plausible wrong answers) ---------
QA = tuple[str, str, str, list[str]]


def _q_yes_no(scene: Scene, rng: np.random.Generator) -> QA | None:
    """The form is drawn before the answer and both answers use the same slot values, so each form is half yes."""
    form, yes = int(rng.integers(4)), bool(rng.random() < 0.5)
    if form == 0:
        pair = _choice(rng, scene.things).describe().split() if yes else _absent_pair(scene, rng)
        if not pair:
            return None
        question = f"is there {_a(' '.join(pair))}?"
    elif form == 1:
        shapes = [s for s in SHAPES if bool(scene.count(shape=s)) == yes]
        if not shapes:
            return None
        question = f"are there any {_plural(_choice(rng, shapes))}?"
    elif form == 2:
        triples = scene.relations(unique_refs=True)
        if not triples:
            return None
        a, rel, b = _choice(rng, triples)
        question = f"is the {scene.ref(a)} {rel if yes else OPPOSITE[rel]} the {scene.ref(b)}?"
    else:
        question = f"can you see {STUFF_NOUNS[_choice(rng, [s for s in STUFF if (s in scene.stuff) == yes])]}?"
    return question, "yes" if yes else "no", "yes/no", ["no" if yes else "yes"]


def _q_count(scene: Scene, rng: np.random.Generator) -> QA:
    """The answer first, then a subject with that count; counts above one are favoured where the scene has one."""
    form = int(rng.integers(3))
    if form == 2:
        question, n = "how many objects are there?", len(scene.things)
    else:
        attr, pattern = (("shape", "how many {} are there?"), ("color", "how many {} objects are there?"))[form]
        counts = {v: scene.count(**{attr: v}) for v in VALUES[attr]}
        big, small = sorted({c for c in counts.values() if c > 1}), sorted({c for c in counts.values() if c <= 1})
        n = _choice(rng, big if big and (not small or rng.random() < BIG_COUNT_P) else small)
        value = _choice(rng, [v for v, c in counts.items() if c == n])
        question = pattern.format(_plural(value) if attr == "shape" else value)
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


# ---- VE: each template lists the statements it can make about a scene, by label -------------
Statements = dict[str, list[str]]


def _st_attribute(scene: Scene, ref: str, pred: str, form: str) -> Statements:
    """'the circle is red', where 'the circle' may be any circle: entailed if all of them are red, contradicted if
    none is, neutral (neither entailed nor contradicted) if some are."""
    out: Statements = defaultdict(list)
    for v in dict.fromkeys(getattr(t, ref) for t in scene.things):
        said = {getattr(t, pred) for t in scene.group(ref, v)}
        for w in VALUES[pred]:
            label = "contradiction" if w not in said else "entailment" if len(said) == 1 else "neutral"
            out[label].append(form.format(v=v, w=w))
    return out


def _st_relation(scene: Scene, ref: str, form: str) -> Statements:
    """'the circle is left of the star', read for every circle and every star: entailed if every reading holds
    clearly, contradicted if the opposite does in every one, neutral if some hold and some are clearly false."""
    out: Statements = defaultdict(list)
    for va, vb in itertools.permutations(dict.fromkeys(getattr(t, ref) for t in scene.things), 2):
        pairs = list(itertools.product(scene.group(ref, va), scene.group(ref, vb)))
        for rel in RELATIONS:
            true = sum(scene.holds(a, rel, b) for a, b in pairs)
            false = sum(scene.holds(a, OPPOSITE[rel], b) for a, b in pairs)
            if true and false:
                out["neutral"].append(form.format(a=va, rel=rel, b=vb))
            elif len(pairs) in (true, false):
                out["entailment" if true else "contradiction"].append(form.format(a=va, rel=rel, b=vb))
    return out


def _st_exists(scene: Scene) -> Statements:
    present = {_desc(t) for t in scene.things}
    return {"entailment": [f"there is {_a(d)}" for d in ALL_THINGS if d in present],
            "contradiction": [f"there is {_a(d)}" for d in ALL_THINGS if d not in present]}


def _st_stuff(scene: Scene) -> Statements:
    out: Statements = defaultdict(list)
    for name in STUFF:
        out["entailment" if name in scene.stuff else "contradiction"].append(f"the picture shows {STUFF_NOUNS[name]}")
    return out


def _st_more(scene: Scene) -> Statements:
    out: Statements = defaultdict(list)
    counts = Counter(t.shape for t in scene.things)
    for a, b in itertools.permutations(SHAPES, 2):
        na, nb = counts[a], counts[b]
        if na != nb:
            out["entailment" if na > nb else "contradiction"].append(f"there are more {_plural(a)} than {_plural(b)}")
    return out


_P = functools.partial
THREE_WAY: tuple[Callable[[Scene], Statements], ...] = (  # templates that can be neutral
    _P(_st_attribute, ref="shape", pred="color", form="the {v} is {w}"),
    _P(_st_attribute, ref="color", pred="shape", form="the {v} object is a {w}"),
    _P(_st_attribute, ref="shape", pred="size", form="the {v} is {w}"),
    _P(_st_attribute, ref="color", pred="size", form="the {v} object is {w}"),
    _P(_st_attribute, ref="size", pred="color", form="the {v} object is {w}"),
    _P(_st_attribute, ref="size", pred="shape", form="the {v} object is a {w}"),
    _P(_st_relation, ref="shape", form="the {a} is {rel} the {b}"),
    _P(_st_relation, ref="color", form="the {a} object is {rel} the {b} object"),
)
TWO_WAY: tuple[Callable[[Scene], Statements], ...] = (_st_exists, _st_stuff, _st_more)  # always decidable


def hypotheses(scene: Scene, rng: np.random.Generator, k: int) -> list[tuple[str, str]]:
    """k (hypothesis, label) pairs, labels cycling through a seeded order of the three.
    The template comes from those that can make all three labels about this scene, drawn without
    looking at the label, so each template is a third each; a scene no such template fits (one or two
    things, nothing ambiguous) gets two-way templates, and its neutral slots turn into a coin flip."""
    labels = rng.permutation(VE_LABELS).tolist()
    three = [s for s in (t(scene) for t in THREE_WAY) if all(s.get(label) for label in VE_LABELS)]
    two = [] if three else [t(scene) for t in TWO_WAY]
    out = []
    for j in range(k):
        label = labels[j % len(VE_LABELS)]
        if not three and label == "neutral":
            label = _choice(rng, ("entailment", "contradiction"))
        statements = _choice(rng, three or [s for s in two if s.get(label)])
        out.append((_sentence(_choice(rng, statements[label])), label))
    return out


# ---- NLVR2: a statement with its truth test, drawn before the pair of scenes -----------------
PairTest = Callable[[Scene, Scene], bool]


def _nl_more(rng: np.random.Generator) -> tuple[str, PairTest]:
    shape = _choice(rng, SHAPES)
    return (f"The left image contains more {_plural(shape)} than the right image.",
            lambda left, right: left.count(shape=shape) > right.count(shape=shape))


def _nl_more_objects(rng: np.random.Generator) -> tuple[str, PairTest]:
    return ("The right image contains more objects than the left image.",
            lambda left, right: len(right.things) > len(left.things))


def _nl_both_color(rng: np.random.Generator) -> tuple[str, PairTest]:
    color = _choice(rng, list(COLORS))
    return f"Both images contain {_a(color)} object.", lambda left, right: bool(
        left.count(color=color) and right.count(color=color))


def _nl_both_thing(rng: np.random.Generator) -> tuple[str, PairTest]:
    size, shape = _choice(rng, SIZES), _choice(rng, SHAPES)
    return f"Both images contain a {size} {shape}.", lambda left, right: bool(
        left.count(shape=shape, size=size) and right.count(shape=shape, size=size))


def _nl_one_stuff(rng: np.random.Generator) -> tuple[str, PairTest]:
    name = _choice(rng, STUFF)
    return (f"Exactly one image has {STUFF_NOUNS[name]}.",
            lambda left, right: (name in left.stuff) != (name in right.stuff))


def _nl_both_stuff(rng: np.random.Generator) -> tuple[str, PairTest]:
    name = _choice(rng, STUFF)
    return f"Both images show {STUFF_NOUNS[name]}.", lambda left, right: name in left.stuff and name in right.stuff


def _nl_total(rng: np.random.Generator) -> tuple[str, PairTest]:
    shape, n = _choice(rng, SHAPES), int(rng.integers(4))
    return (_sentence(f"{_there_are(n, shape)} in the two images"),
            lambda left, right: left.count(shape=shape) + right.count(shape=shape) == n)


def _nl_only_left(rng: np.random.Generator) -> tuple[str, PairTest]:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    return (f"The left image has {_a(f'{color} {shape}')} but the right image does not.",
            lambda left, right: left.count(shape=shape, color=color) > 0 and not right.count(shape=shape, color=color))


def _nl_neither(rng: np.random.Generator) -> tuple[str, PairTest]:
    shape = _choice(rng, SHAPES)
    return (f"Neither image contains {_a(shape)}.",
            lambda left, right: not (left.count(shape=shape) or right.count(shape=shape)))


PAIR_STATEMENTS = (_nl_more, _nl_more_objects, _nl_both_color, _nl_both_thing, _nl_one_stuff, _nl_both_stuff,
                   _nl_total, _nl_only_left, _nl_neither)


def pair_statement(scenes: Sequence[Scene], rng: np.random.Generator) -> tuple[int, int, str, bool]:
    """(left index, right index, statement, truth). The template and its words come first, then pairs of
    scenes are drawn until the truth matches a fair coin, so every statement is true half of the time;
    in a split too small for that the last pair is kept with its own truth."""
    make, want = _choice(rng, PAIR_STATEMENTS), bool(rng.random() < 0.5)
    for _ in range(PAIR_ROUNDS):
        sentence, test = make(rng)
        for _ in range(PAIR_TRIES):
            i = int(rng.integers(len(scenes)))
            j = (i + 1 + int(rng.integers(len(scenes) - 1))) % len(scenes) if len(scenes) > 1 else i  # j != i
            if (truth := test(scenes[i], scenes[j])) == want:
                return i, j, sentence, truth
    return i, j, sentence, truth
