"""The official VQA scoring rules (vqaEval.py, 2016-2021 version), one hand-worked case per quirk."""
import pytest

from stages.evaluation import vqa_answers
from stages.evaluation.vqa_official import (
    percent,
    process_digit_article,
    process_prediction,
    process_punctuation,
    question_accuracy,
    round2,
    summarize,
)


def test_issue_example_prediction_processed_humans_punctuation_only():
    # "two" -> "2"; the humans disagree, so they get punctuation processing only: "two" stays "two"
    # and only the one "2" matches. Leaving that "2" out leaves 0 matches, leaving out any of the
    # other 9 leaves 1 (1/3): 9 * (1/3) / 10 = 0.3.
    answers = ["two", "two", "2"] + ["3"] * 7
    assert question_accuracy("two", answers) == pytest.approx(0.3)
    # the training-target normalisation matches all three: (3 * 2/3 + 7 * 1) / 10 = 0.9
    assert vqa_answers.accuracy("two", answers) == pytest.approx(0.9)


def test_unanimous_humans_are_not_processed_at_all():
    assert question_accuracy("Two", ["Two"] * 10) == 0.0    # the prediction becomes "2", the humans stay "Two"
    assert question_accuracy("2", ["two"] * 10) == 0.0
    assert question_accuracy("two", ["2"] * 10) == 1.0
    assert question_accuracy("yes", ["yes "] * 10) == 0.0   # not even stripped


def test_disagreeing_humans_keep_their_case():
    # "Yes" x 9 and "yes": they disagree, punctuation only, so 1 match for the prediction "yes": 9/30
    assert question_accuracy("Yes", ["Yes"] * 9 + ["yes"]) == pytest.approx(0.3)


def test_punctuation_of_a_human_answer_leaves_spaces_behind():
    # "yes!" -> "yes " (the mark becomes a space and nothing strips it): only the two "yes" match.
    # Leaving out a "yes": 1 match (1/3), 2 subsets; leaving out a "yes!": 2 matches (2/3), 8 subsets.
    assert process_punctuation("yes!") == "yes "
    assert question_accuracy("yes!", ["yes!"] * 8 + ["yes"] * 2) == pytest.approx((2 / 3 + 8 * 2 / 3) / 10)


@pytest.mark.parametrize("raw, want", [
    ("5.", "5"),             # the script's broken lookbehind: a period goes unless a digit follows
    (".5", ".5"), ("1.5", "1.5"), ("end.", "end"), ("a.b", "ab"),
    ("." * 33, "."),         # at most 32 periods go (re.UNICODE passed as the count)
    ("1,000", "1000"),       # digit,digit: every mark is removed, not spaced
    ("1,000 (approx)", "1000 approx"),
    ("red,blue", "red blue"),
    ("red, blue", "red blue"),                 # the comma touches a space: removed
    ("black - white", "black  white"),         # removed, both spaces stay
    ("(left)", " left "),
    ("black-and-white", "black and white"),
    ("don't", "don't"), ("it's:", "it's:"),    # apostrophes and colons are not in the list
    ("a\tb", "a\tb"),                          # tabs are the prediction's first step, not this one
])
def test_process_punctuation(raw, want):
    assert process_punctuation(raw) == want


def test_decimal_comma_rule_uses_ascii_digits_only():
    # the script is Python 2, where a flagless \d is 0-9: an Arabic-Indic digit pair does not join
    assert process_punctuation("\u0663,\u0664") == "\u0663 \u0664"


@pytest.mark.parametrize("raw, want", [
    ("The Two dogs", "2 dogs"), ("an apple", "apple"), ("none", "0"), ("TEN", "10"), ("eleven", "eleven"),
    ("dont", "don't"), ("isnt", "isn't"), ("wont", "won't"), ("hed", "he'd"),
    ("couldnt've", "couldn't've"), ("couldn'tve", "couldn't've"),
    ("couldntve", "couldntve"),            # both apostrophes missing: not in the script's table
    ("yallll", "yallll"), ("y'allll", "y'all'll"),
    ("im", "im"), ("ive", "ive"),          # the script's keys "Im", "Ive" are capitalised: never met
    ("somebody'd", "somebodyd"),           # mapped the wrong way round
    ("shes", "shes"), ("its", "its"), ("well", "well"),
    ("a  b", "b"),
])
def test_process_digit_article(raw, want):
    assert process_digit_article(raw) == want


def test_prediction_pipeline():
    assert process_prediction("  The Two\n dogs.\t") == "2 dogs"
    assert process_prediction("isnt it?") == "isn't it"


def test_leave_one_out_over_records():
    # 3 of 10 match: leaving out a match leaves 2 (2/3), any other leaves 3 (1): (3 * 2/3 + 7) / 10
    assert question_accuracy("red", ["red"] * 3 + ["blue"] * 7) == pytest.approx(0.9)
    # records without answer_id are equal: leaving one out takes all equal ones along
    assert question_accuracy("yes", ["yes"] * 10) == 1.0
    assert question_accuracy("yes", ["yes"] * 10, records=[()] * 10) == 0.0
    # 3 identical "red" records and 7 distinct others: leaving out a "red" drops all 3 (0);
    # leaving out another keeps 3 (1): 7/10
    assert question_accuracy("red", ["red"] * 3 + ["blue"] * 7, records=[()] * 3 + list(range(7))) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="at least one"):
        question_accuracy("red", [])
    with pytest.raises(ValueError, match="2 answer records for 3"):
        question_accuracy("red", ["a", "b", "c"], records=[1, 2])


def test_fewer_than_ten_answers_cap_a_right_answer():
    # ["cat", "cat", "kitten"]: leaving out a "cat" leaves 1 match (1/3), twice; leaving out
    # "kitten" leaves 2 (2/3): (1/3 + 1/3 + 2/3) / 3 = 4/9
    assert question_accuracy("cat", ["cat", "cat", "kitten"]) == pytest.approx(4 / 9)
    assert question_accuracy("cat", ["cat"]) == 0.0                   # no other answer to agree with
    assert question_accuracy("cat", ["cat"] * 2) == pytest.approx(1 / 3)
    assert question_accuracy("cat", ["cat"] * 3) == pytest.approx(2 / 3)
    assert question_accuracy("cat", ["cat"] * 4) == 1.0


def test_rounding_is_python2s():
    assert round2(12.125) == 12.13       # an exact binary tie goes away from zero (Python 3 gives 12.12)
    assert round(12.125, 2) == 12.12
    assert round2(2.675) == 2.67         # 2.675 is stored a little below the tie
    assert round2(-0.125) == -0.13
    assert percent([1, 0, 0]) == 33.33
    assert percent([4 / 9]) == 44.44
    with pytest.raises(ValueError):
        percent([])


def test_summary_per_answer_and_question_type():
    accs = [1.0, 0.3, 0.6]
    out = summarize(accs, ["yes/no", "other", "other"], ["is the", "what", "what color"])
    assert out == {"overall": 63.33, "perAnswerType": {"yes/no": 100.0, "other": 45.0},
                   "perQuestionType": {"is the": 100.0, "what": 30.0, "what color": 60.0}}
    assert "perQuestionType" not in summarize(accs, ["a", "b", "c"])
    with pytest.raises(ValueError, match="parallel"):
        summarize(accs, ["a"])
