"""VQA accuracy as the VQA authors' evaluation script computes it, quirks included.

The reference is `PythonEvaluationTools/vqaEvaluation/vqaEval.py` of GT-Vision-Lab/VQA as it stood
from its contraction fix (commit 458a8b2, October 2016) to its change of March 2021 (a013f00); this
is an independent implementation of that algorithm. Per question:
- the prediction: newlines/tabs to spaces, stripped, then ALWAYS punctuation- and
  digit/article/contraction-processed;
- the human answers: taken as they are when they all agree; otherwise each gets punctuation
  processing only (no lower case, no number words, no articles, no strip);
- accuracy: the mean over leaving out each human answer record of min(1, #matches among the
  others / 3); a left-out record takes every record equal to it along (records with their
  answer_id are all distinct).
Totals are 100 x the mean over questions, rounded to 2 decimals as Python 2 rounds (the script is
Python 2): ties away from zero. `stages.evaluation.vqa_answers` keeps the training targets' own
normalisation, which differs.
"""
from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from decimal import ROUND_HALF_UP, Decimal

PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# re.ASCII: the script's patterns carry no flags, and in Python 2 that makes \d mean 0-9 only.
_COMMA_DIGITS = re.compile(r"(\d)(,)(\d)", re.ASCII)
# The script's period pattern opens with "(?!<=\d)", a lookahead where a lookbehind was meant; it never
# matches at a period, so every period goes unless a digit follows it ("5." -> "5", "1.5" stays).
_PERIOD = re.compile(r"\.(?!\d)", re.ASCII)
# The script hands re.UNICODE (== 32) to re.sub where the replacement count goes: at most 32 periods go.
_PERIOD_COUNT = 32
NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
           "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
# The script's contraction table, in two families. One apostrophe: looked up without it ("dont").
_ONE_APOSTROPHE = (
    "ain't", "aren't", "can't", "could've", "couldn't", "didn't", "doesn't", "don't", "hadn't", "hasn't", "haven't",
    "he'd", "he's", "how'd", "how'll", "how's", "isn't", "it'd", "it'll", "ma'am", "mightn't", "might've", "mustn't",
    "must've", "needn't", "not've", "o'clock", "oughtn't", "shan't", "should've", "shouldn't", "somebody'll",
    "somebody's", "someone'd", "someone'll", "someone's", "something'd", "something'll", "that's", "there'd",
    "there're", "there's", "they'd", "they'll", "they're", "they've", "'twas", "wasn't", "we've", "weren't",
    "what'll", "what're", "what's", "what've", "when's", "where'd", "where's", "where've", "who'd", "who'll",
    "who's", "who've", "why'll", "why're", "why's", "won't", "would've", "wouldn't", "y'all", "you'd", "you'll",
    "you're", "you've",
)
# Several apostrophes: looked up with exactly one of them left out ("couldnt've", "couldn'tve"; never
# "couldntve").
_SEVERAL_APOSTROPHES = (
    "couldn't've", "hadn't've", "he'd've", "it'd've", "mightn't've", "she'd've", "shouldn't've", "somebody'd've",
    "someone'd've", "something'd've", "there'd've", "they'd've", "we'd've", "who'd've", "wouldn't've",
    "you'd've", "y'all'll", "y'all'd've", "'ow's'at",
)
# Left out on purpose: the script's keys "Im", "Ive", "Id've", "I'dve" (never met: words are lower-cased
# before the look-up) and "let's", "she's" (mapped to themselves).


def _one_left_out(word: str) -> list[str]:
    """`word` with each one of its apostrophes removed in turn."""
    cuts = [i for i, c in enumerate(word) if c == "'"]
    return [word[:i] + word[i + 1:] for i in cuts]


CONTRACTIONS: dict[str, str] = {
    **{w.replace("'", ""): w for w in _ONE_APOSTROPHE},
    **{s: w for w in _SEVERAL_APOSTROPHES for s in _one_left_out(w)},
    "somebody'd": "somebodyd",   # the script maps this one the wrong way round
}


def clean(text: str) -> str:
    """Newlines and tabs to spaces, then stripped (the prediction's first step)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """Each mark of PUNCT is removed when it touches a space somewhere in `text` or `text` has a
    digit-comma-digit anywhere, else replaced by a space; then periods not before a digit go."""
    out = text
    join_all = _COMMA_DIGITS.search(text) is not None
    for p in PUNCT:
        if join_all or p + " " in text or " " + p in text:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """Lower-cased words; number words zero..ten (and "none") to digits; articles dropped;
    contractions to the script's spellings; joined by single spaces."""
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def process_prediction(answer: str) -> str:
    return process_digit_article(process_punctuation(clean(answer)))


def question_accuracy(prediction: str, answers: Sequence[str], records: Sequence[Hashable] | None = None) -> float:
    """Accuracy in [0, 1] of one prediction against the human answers of one question.

    `records`: per answer, the rest of its annotation record (e.g. answer_id, answer_confidence);
    leaving an answer out removes every record equal to it, answer included. None: all distinct."""
    if not answers:
        raise ValueError("a VQA question needs at least one human answer")
    if records is not None and len(records) != len(answers):
        raise ValueError(f"{len(records)} answer records for {len(answers)} answers")
    pred = process_prediction(prediction)
    human = [process_punctuation(a) for a in answers] if len(set(answers)) > 1 else list(answers)
    keys: list[Hashable] = list(range(len(human))) if records is None else list(zip(human, records))
    per_left_out = []
    for left in keys:
        matches = sum(1 for a, k in zip(human, keys) if k != left and a == pred)
        per_left_out.append(min(1, matches / 3))
    return sum(per_left_out) / len(per_left_out)


def round2(x: float) -> float:
    """round(x, 2) as Python 2 does it: the exact binary value, ties away from zero."""
    return float(Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def percent(accuracies: Sequence[float]) -> float:
    """100 x the mean of per-question accuracies, summed in order and rounded as the script does."""
    if not accuracies:
        raise ValueError("no questions to average")
    return round2(100 * sum(accuracies) / len(accuracies))


def summarize(accuracies: Sequence[float], answer_types: Sequence[str],
              question_types: Sequence[str] | None = None) -> dict[str, object]:
    """The script's report: overall, perAnswerType and (given question types) perQuestionType, in
    percent; groups in order of first appearance."""
    if len(answer_types) != len(accuracies) or (question_types is not None and len(question_types) != len(accuracies)):
        raise ValueError("accuracies, answer types and question types must be parallel")
    out: dict[str, object] = {"overall": percent(accuracies), "perAnswerType": _per_group(accuracies, answer_types)}
    if question_types is not None:
        out["perQuestionType"] = _per_group(accuracies, question_types)
    return out


def _per_group(accuracies: Sequence[float], groups: Sequence[str]) -> dict[str, float]:
    members: dict[str, list[float]] = {}
    for acc, g in zip(accuracies, groups):
        members.setdefault(g, []).append(acc)
    return {g: percent(accs) for g, accs in members.items()}
