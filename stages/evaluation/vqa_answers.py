"""VQA answers for TRAINING: the answer vocabulary, the soft targets and their normalisation.

Scores reported as VQA accuracy come from `vqa_official` (the authors' vqaEval.py rules); this
module's normalisation only decides which answers share a vocabulary entry and each entry's soft
target. It follows the official steps (newlines/tabs to spaces; punctuation removed when it touches
a space or the text has a digit-comma-digit, else spaced; periods dropped unless a digit is on
either side; lower case; number words to digits; articles dropped; contractions written without
apostrophes restored) but, unlike the official scoring, applies them to every human answer, keeps a
period after a digit ("5." stays) and restores its own list of contractions, not the script's table.

Soft target of an answer a against the human answers (normally 10): the mean over the leave-one-out
subsets of min(#matches of a among the other answers / 3, 1); with one human answer, exact match.
"""
from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence

_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_COMMA_DIGITS = re.compile(r"(\d)(,)(\d)")
_PERIOD = re.compile(r"(?<!\d)(\.)(?!\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
# Contractions whose apostrophe-less spelling is not itself an English word (so "its", "ill",
# "well", "were", "wed", "shell", "lets" stay as they are).
_CONTRACTIONS = [
    "ain't", "aren't", "can't", "could've", "couldn't", "couldn't've", "didn't", "doesn't", "don't", "hadn't",
    "hadn't've", "hasn't", "haven't", "he'd", "he'd've", "he's", "how'd", "how'll", "how's", "i'd", "i'd've",
    "i'm", "i've", "isn't", "it'd", "it'd've", "it'll", "ma'am", "mightn't", "mightn't've", "might've",
    "mustn't", "must've", "needn't", "not've", "o'clock", "oughtn't", "shan't", "she'd", "she'd've", "she's",
    "should've", "shouldn't", "shouldn't've", "somebody'd", "somebody'd've", "somebody'll", "somebody's",
    "someone'd", "someone'd've", "someone'll", "someone's", "something'd", "something'd've", "something'll",
    "that's", "there'd", "there'd've", "there're", "there's", "they'd", "they'd've", "they'll", "they're",
    "they've", "'twas", "wasn't", "we'd've", "we've", "weren't", "what'll", "what're", "what's", "what've",
    "when's", "where'd", "where's", "where've", "who'd", "who'd've", "who'll", "who's", "who've", "why'll",
    "why're", "why's", "won't", "would've", "wouldn't", "wouldn't've", "y'all", "y'all'll", "y'all'd've",
    "you'd", "you'd've", "you'll", "you're", "you've",
]


def _spellings(word: str) -> list[str]:
    """Every spelling of `word` with some (not none) of its apostrophes left out."""
    parts = word.split("'")
    out = []
    for keep in itertools.product((True, False), repeat=len(parts) - 1):
        if all(keep):
            continue
        out.append(parts[0] + "".join(("'" if k else "") + p for k, p in zip(keep, parts[1:])))
    return out


CONTRACTIONS = {s: w for w in _CONTRACTIONS for s in _spellings(w)}


def _punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_DIGITS.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out)


def _digits_articles(text: str) -> str:
    words = []
    for w in text.lower().split():
        w = _NUMBERS.get(w, w)
        if w not in _ARTICLES:
            words.append(CONTRACTIONS.get(w, w))
    return " ".join(words)


def normalize(answer: str) -> str:
    """An answer as the official VQA evaluation compares it."""
    return _digits_articles(_punctuation(answer.replace("\n", " ").replace("\t", " ").strip()))


def accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Soft-target accuracy of one answer against the human answers (normally 10), both normalised.

    Mean over the leave-one-out subsets of min(#matches among the others / 3, 1). With a single
    human answer (datasets such as GQA or COCO-QA) it is exact match.
    """
    if not answers:
        raise ValueError("VQA accuracy needs at least one human answer")
    gt = [normalize(a) for a in answers]
    pred = normalize(prediction)
    if len(gt) == 1:
        return float(gt[0] == pred)
    matches = sum(a == pred for a in gt)
    # leaving out a matching answer leaves matches - 1 others; leaving out another leaves matches
    per_subset = [min((matches - (a == pred)) / 3.0, 1.0) for a in gt]
    return sum(per_subset) / len(gt)


def soft_scores(answers: Sequence[str], vocab: dict[str, int]) -> dict[int, float]:
    """Training target: the `accuracy` of each vocabulary answer present among `answers`."""
    out = {}
    for a in {normalize(a) for a in answers}:
        if a in vocab:
            s = accuracy(a, answers)
            if s > 0:
                out[vocab[a]] = s
    return out


def build_vocab(answer_lists: Sequence[Sequence[str]], min_count: int) -> list[str]:
    """Normalised answers given by at least `min_count` questions (each question counts an answer
    once), most frequent first, ties alphabetical."""
    counts = Counter(a for answers in answer_lists for a in {normalize(x) for x in answers})
    return sorted((a for a, c in counts.items() if c >= min_count and a), key=lambda a: (-counts[a], a))
