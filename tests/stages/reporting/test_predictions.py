"""Confusion matrices and per-kind accuracy, computed from evaluate's predictions rows."""
import json

import numpy as np
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


def test_vqa_confusion_is_question_type_against_answer_type():
    rows = [{"id": "1", "answer_type": "number", "truth": ["2"] * 10, "prediction": "yes", "blind": "3"},
            {"id": "2", "answer_type": "yes/no", "truth": ["no"] * 10, "prediction": "no", "blind": "no"},
            {"id": "3", "answer_type": "other", "truth": ["red"] * 10, "prediction": "2", "blind": "blue"}]
    labels, mats = pred.confusions("vqa", rows)
    assert labels == ["yes/no", "number", "other"]
    assert mats["prediction"].tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert np.trace(mats["blind"]) == 3


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
