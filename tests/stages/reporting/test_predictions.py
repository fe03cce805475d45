"""Confusion matrices and per-kind accuracy, computed from evaluate's predictions rows."""
import json

import pytest

from stages.common.cli import StageError
from stages.reporting import predictions as pred

VE_ROWS = [{"id": str(i), "truth": t, "prediction": p, "blind": b} for i, (t, p, b) in enumerate([
    ("entailment", "entailment", "neutral"), ("entailment", "contradiction", "neutral"),
    ("neutral", "neutral", "neutral"), ("contradiction", "contradiction", "entailment"),
    ("contradiction", "entailment", "entailment")])]


def test_label_confusion_counts():
    labels, mats = pred.confusions("ve", VE_ROWS)
    assert labels == ["entailment", "neutral", "contradiction"]
    assert mats["prediction"].tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]   # rows: truth, columns: prediction
    assert mats["blind"].tolist() == [[0, 2, 0], [0, 1, 0], [2, 0, 0]]
    assert mats["prediction"].sum() == len(VE_ROWS)


def test_nlvr2_labels_and_unknown_values():
    rows = [{"id": "a", "truth": "true", "prediction": "false", "blind": "true"}]
    labels, mats = pred.confusions("nlvr2", rows)
    assert labels == ["false", "true"] and mats["prediction"].tolist() == [[0, 0], [1, 0]]
    with pytest.raises(ValueError, match="none of the labels"):
        pred.confusion(["a"], ["b"], ["a"])


@pytest.mark.parametrize(("answer", "kind"), [("yes", "yes/no"), ("No", "yes/no"), ("2", "number"),
                                              ("two", "number"), ("1.5", "number"), ("red", "other"),
                                              ("yes please", "other")])
def test_answer_kind(answer, kind):
    assert pred.answer_kind(answer) == kind


def _vqa(qid, atype, truth, prediction, blind):
    return {"id": qid, "answer_type": atype, "truth": truth, "prediction": prediction, "blind": blind}


def test_vqa_confusion_per_answer_type_over_the_frequent_answers():
    rows = [_vqa("1", "yes/no", ["yes"] * 10, "yes", "no"), _vqa("2", "yes/no", ["no"] * 6 + ["yes"] * 4, "no", "no"),
            _vqa("3", "yes/no", ["Yes"] * 10, "2", "yes"),
            _vqa("4", "other", ["red"] * 10, "red", "blue"), _vqa("5", "other", ["red"] * 10, "blue", "red"),
            _vqa("6", "other", ["blue"] * 10, "circle", "blue"), _vqa("7", "other", ["teal"] * 10, "red", "red")]
    per = pred.answer_confusions(rows, top=2)
    assert list(per) == ["yes/no", "other"]                  # no number questions: no matrix
    labels, mats = per["yes/no"]
    assert labels == ["yes", "no", pred.REST]                # "Yes" normalised; "2" to a yes/no question: REST
    assert mats["prediction"].tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert mats["blind"].tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    labels, mats = per["other"]
    assert labels == ["red", "blue", pred.REST]              # top 2 by count; teal is rarer
    assert mats["prediction"].tolist() == [[1, 1, 0], [0, 0, 1], [1, 0, 0]]
    assert mats["blind"].sum() == 4
    assert pred.cross_type(rows) == {"prediction": 1, "blind": 0}


def test_per_kind_accuracy():
    rows = [{"id": "q1", "truth": ["red"] * 10, "prediction": "red", "blind": "blue"},
            {"id": "q2", "truth": ["blue"] * 10, "prediction": "red", "blind": "blue"},
            {"id": "q3", "truth": ["circle"] * 10, "prediction": "circle", "blind": "circle"},
            {"id": "q4", "truth": ["yes"] * 10, "prediction": "yes", "blind": "no"}]
    kinds = {"q1": "color", "q2": "color", "q3": "shape", "q4": None}
    assert pred.per_kind(rows, kinds, prior="red") == [["color", "2", "0.5000", "0.5000", "0.5000"],
                                                      ["shape", "1", "1.0000", "1.0000", "0.0000"]]
    assert pred.per_kind(rows, {}, prior="red") == []


def test_read_predictions_keeps_labelled_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="dvc repro evaluate@vqa"):
        pred.read_predictions("vqa", "toy")
    path = pred.predictions_path("vqa", "toy")
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps({"id": i, "truth": t}) for i, t in (("a", ["x"]), ("b", []))) + "\n")
    assert [r["id"] for r in pred.read_predictions("vqa", "toy")] == ["a"]
    path.write_text("{not json\n")
    with pytest.raises(StageError, match="not JSON lines"):
        pred.read_predictions("vqa", "toy")


def test_majority_answer():
    assert pred.majority(["2", "3", "3", "2", "3"]) == "3" and pred.majority(["a", "b"]) == "a"
