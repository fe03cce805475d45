"""NLVR2 consistency with the official sentence grouping, by hand-worked cases."""
import pytest

from stages.evaluation.metrics import top1_accuracy
from stages.evaluation.nlvr2 import consistency, nlvr2_sentence


def test_nlvr2_sentence_blanks_the_pair_part_of_official_identifiers():
    assert nlvr2_sentence("dev-850-2-1") == "dev-850--1"
    assert nlvr2_sentence("test1-3-0-0") == "test1-3--0"
    assert nlvr2_sentence("scenes-test-p000001") == "scenes-test-p000001"   # not the official form: its own


def test_nlvr2_consistency_hand_worked():
    ids = ["dev-850-0-0", "dev-850-1-0", "dev-850-2-0",     # sentence dev-850--0 over 3 image pairs
           "dev-850-0-1", "dev-850-1-1",                    # sentence dev-850--1 over 2
           "dev-851-0-0"]                                   # sentence dev-851--0 over 1
    truth = ["true", "false", "true", "true", "true", "false"]
    pred = ["true", "false", "true", "true", "false", "false"]   # one pair of sentence 1 wrong
    assert top1_accuracy(pred, truth) == 5 / 6
    assert consistency(ids, pred, truth) == 2 / 3
    # ids of another form (the synthetic scenes: one pair per sentence): consistency is accuracy
    scenes = [f"scenes-test-p{k:06d}" for k in range(4)]
    assert consistency(scenes, [1, 0, 1, 1], [1, 1, 1, 1]) == top1_accuracy([1, 0, 1, 1], [1, 1, 1, 1]) == 0.75
    with pytest.raises(ValueError, match="2 ids, 1 predictions"):
        consistency(ids[:2], pred[:1], truth[:2])
