"""NLVR2 consistency as the official NLVR2 evaluation (lil-lab/nlvr, nlvr2/eval/metrics.py) reports it
beside accuracy: the share of sentences whose every image pair is predicted right."""
from __future__ import annotations

from storage.adapters.nlvr2 import IDENTIFIER


def nlvr2_sentence(pair_id: str) -> str:
    """The sentence an NLVR2 row states, as the official evaluation groups rows for consistency: the
    identifier <split>-<set>-<pair>-<sentence> with its pair part blanked. An id of another form
    (e.g. the synthetic scenes, one pair per sentence) is its own sentence."""
    if not IDENTIFIER.match(pair_id):
        return pair_id
    parts = pair_id.split("-")
    parts[2] = ""
    return "-".join(parts)


def consistency(pair_ids: list[str], predicted: list, truth: list) -> float:
    """NLVR2 consistency: the share of sentences whose every image pair is predicted right."""
    if not len(pair_ids) == len(predicted) == len(truth):
        raise ValueError(f"{len(pair_ids)} ids, {len(predicted)} predictions, {len(truth)} labels")
    if not truth:
        raise ValueError("consistency of an empty set")
    right: dict[str, bool] = {}
    for i, p, t in zip(pair_ids, predicted, truth):
        key = nlvr2_sentence(i)
        right[key] = right.get(key, True) and p == t
    return sum(right.values()) / len(right)
