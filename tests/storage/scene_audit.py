"""Text-only audits of the `scenes` tables: verbatim caption duplicates, the template of a question or
statement (its words for colours, shapes, sizes, stuff, numbers and relations masked), label shares per
template and the accuracy of blind classifiers that see only the text.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence

from storage.adapters.scene_render import COLORS, RELATIONS, SHAPES, SIZES, STUFF

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_SHAPE_WORDS = SHAPES + tuple(s + "s" for s in SHAPES) + ("crosses",)
_SLOTS = [("REL", RELATIONS), ("COLOR", tuple(COLORS)), ("SHAPE", _SHAPE_WORDS), ("SIZE", SIZES), ("STUFF", STUFF),
          ("NUM", NUMBERS)]
_MASK = [(re.compile(r"\b(?:" + "|".join(sorted(words, key=len, reverse=True)) + r")\b"), name)
         for name, words in _SLOTS]


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def template(text: str) -> str:
    """The text with every slot word replaced by its kind ('is the SHAPE REL the SHAPE?')."""
    out = re.sub(r"\ban\b", "a", normalise(text))
    for pattern, name in _MASK:
        out = pattern.sub(name, out)
    return re.sub(r"\b\d+\b", "NUM", out)


def shared_share(rows: Sequence[dict], text: str = "text", owner: str = "image_id") -> float:
    """Share of rows whose normalised text also belongs to another owner (image)."""
    owners: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        owners[normalise(r[text])].add(r[owner])
    return sum(len(owners[normalise(r[text])]) > 1 for r in rows) / max(len(rows), 1)


def label_shares(texts: Sequence[str], labels: Sequence[Hashable]) -> dict[str, Counter]:
    """Label counts per template."""
    out: dict[str, Counter] = defaultdict(Counter)
    for t, y in zip(texts, labels):
        out[template(t)][y] += 1
    return dict(out)


def majority_blind(train: tuple[Sequence[str], Sequence[Hashable]], test: tuple[Sequence[str], Sequence[Hashable]],
                   key: Callable[[str], str] = template) -> float:
    """Test accuracy of predicting the most common train label of the text's key (else the overall one)."""
    by_key: dict[str, Counter] = defaultdict(Counter)
    for t, y in zip(*train):
        by_key[key(t)][y] += 1
    overall = Counter(train[1]).most_common(1)[0][0]
    hits = [(by_key[key(t)].most_common(1)[0][0] if key(t) in by_key else overall) == y for t, y in zip(*test)]
    return sum(hits) / max(len(hits), 1)


def prior(train_labels: Sequence[Hashable], test_labels: Sequence[Hashable]) -> float:
    """Test accuracy of always predicting the most common train label."""
    top = Counter(train_labels).most_common(1)[0][0]
    return sum(y == top for y in test_labels) / max(len(test_labels), 1)


def majority_answer(answers: Sequence[str]) -> str:
    return Counter(answers).most_common(1)[0][0]
