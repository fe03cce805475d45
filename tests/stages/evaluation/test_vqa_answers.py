"""The official VQA answer normalisation and accuracy, by hand-worked cases."""
import pytest

from stages.evaluation.vqa_answers import accuracy, build_vocab, normalize, soft_scores


@pytest.mark.parametrize("raw, want", [
    ("Yes", "yes"),
    ("  two\n", "2"),                       # number words -> digits, whitespace
    ("The red ball.", "red ball"),          # article dropped, final period dropped
    ("a dog", "dog"),
    ("dont", "don't"), ("isnt", "isn't"),   # contractions restored
    ("couldnt've", "couldn't've"), ("couldntve", "couldn't've"),
    ("its", "its"), ("well", "well"),       # real words are never "restored"
    ("3.5", "3.5"),                         # a period between digits stays
    ("1,000", "1000"),                      # digit,digit: punctuation joined
    ("black-and-white", "black and white"),  # otherwise punctuation becomes a space
    ("yes!", "yes"), ("(left)", "left"),
    ("ten", "10"), ("none", "0"),
])
def test_normalize(raw, want):
    assert normalize(raw) == want


def test_accuracy_leave_one_out_hand_worked():
    # 3 of 10 humans said "2": leaving out one of them leaves 2 matches (2/3), leaving out any
    # other leaves 3 (1.0): (3 * 2/3 + 7 * 1) / 10 = 0.9
    assert accuracy("2", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)
    # 1 match: 9 subsets keep it (1/3), one loses it (0): 9/30 = 0.3
    assert accuracy("cat", ["cat"] + ["dog"] * 9) == pytest.approx(0.3)
    # 2 matches: 8 subsets keep both (2/3), 2 keep one (1/3): (8*2/3 + 2/3) / 10 = 0.6
    assert accuracy("cat", ["cat"] * 2 + ["dog"] * 8) == pytest.approx(0.6)
    assert accuracy("yes", ["yes"] * 10) == 1.0
    assert accuracy("no", ["yes"] * 10) == 0.0


def test_accuracy_normalises_both_sides():
    assert accuracy("Two", ["2"] * 10) == 1.0
    assert accuracy("the cat.", ["cat"] * 10) == 1.0


def test_single_answer_is_exact_match_and_empty_is_an_error():
    assert accuracy("red", ["red"]) == 1.0 and accuracy("red", ["blue"]) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        accuracy("red", [])


def test_soft_scores_are_the_accuracy_of_each_vocabulary_answer():
    vocab = {"2": 0, "3": 1, "4": 2}
    assert soft_scores(["two"] * 3 + ["3"] * 6 + ["seven"], vocab) == pytest.approx({0: 0.9, 1: 1.0})


def test_vocab_counts_questions_once_and_orders_by_frequency():
    lists = [["yes"] * 10, ["Yes", "no"], ["no"] * 10, ["no"], ["cat"]]
    assert build_vocab(lists, 1) == ["no", "yes", "cat"]
    assert build_vocab(lists, 2) == ["no", "yes"]
