"""Submission writers: the official formats, coverage checks, atomic writes."""
import csv
import json

import pytest

from storage.submissions import (
    SubmissionError,
    write_gqa_predictions,
    write_nlvr2_predictions,
    write_retrieval_ranks,
    write_vqa_results,
)


def test_vqa_results_evalai_format(tmp_path):
    preds = {"262148000": "yes", "262148001": "2", "999": "extra"}
    assert write_vqa_results(tmp_path / "r.json", preds, ["262148000", "262148001", "262148000"]) == 2
    assert json.loads((tmp_path / "r.json").read_text()) == [
        {"question_id": 262148000, "answer": "yes"}, {"question_id": 262148001, "answer": "2"}]


def test_vqa_results_refuse_missing_predictions_and_leave_no_file(tmp_path):
    with pytest.raises(SubmissionError, match=r"2 of 3 ids have no prediction, e\.g\. 2, 3"):
        write_vqa_results(tmp_path / "r.json", {"1": "yes"}, ["1", "2", "3"])
    with pytest.raises(SubmissionError, match="question ids must be integers, got q1"):
        write_vqa_results(tmp_path / "r.json", {"q1": "yes"}, ["q1"])
    with pytest.raises(SubmissionError, match="answer strings"):
        write_vqa_results(tmp_path / "r.json", {"1": 3}, ["1"])
    with pytest.raises(SubmissionError, match="no ids"):
        write_vqa_results(tmp_path / "r.json", {"1": "yes"}, [])
    assert list(tmp_path.iterdir()) == []


def test_gqa_predictions(tmp_path):
    assert write_gqa_predictions(tmp_path / "p.json", {"20968379": "left", "201": "yes"}, ["201", "20968379"]) == 2
    assert json.loads((tmp_path / "p.json").read_text()) == [{"questionId": "201", "prediction": "yes"},
                                                           {"questionId": "20968379", "prediction": "left"}]
    with pytest.raises(SubmissionError, match="1 of 1 ids"):
        write_gqa_predictions(tmp_path / "p.json", {}, ["7"])


def test_nlvr2_csv_as_the_official_script_reads_it(tmp_path):
    preds = {"test1-0-1-0": True, "test1-0-1-1": False}
    assert write_nlvr2_predictions(tmp_path / "p.csv", preds, ["test1-0-1-0", "test1-0-1-1"]) == 2
    assert (tmp_path / "p.csv").read_text() == "test1-0-1-0,True\ntest1-0-1-1,False\n"
    # metrics.py: line.strip().split(",") and prediction.lower() == label.lower()
    read = {ident: pred for ident, pred in csv.reader((tmp_path / "p.csv").open())}
    assert read["test1-0-1-0"].lower() == "true"
    with pytest.raises(SubmissionError, match="True/False"):
        write_nlvr2_predictions(tmp_path / "p.csv", {"a-1-2-3": "True"}, ["a-1-2-3"])


def test_retrieval_ranks_jsonl(tmp_path):
    ranks = {"coco-1": ["11", "12", "30"], "coco-2": ["21", "11"]}
    assert write_retrieval_ranks(tmp_path / "i2t.jsonl", ranks, ["coco-2", "coco-1"]) == 2
    lines = [json.loads(x) for x in (tmp_path / "i2t.jsonl").read_text().splitlines()]
    assert lines == [{"query": "coco-2", "ranked": ["21", "11"]}, {"query": "coco-1", "ranked": ["11", "12", "30"]}]
    with pytest.raises(SubmissionError, match="repeats a candidate"):
        write_retrieval_ranks(tmp_path / "x.jsonl", {"q": ["a", "a"]}, ["q"])
    with pytest.raises(SubmissionError, match="must be a list of candidate ids"):
        write_retrieval_ranks(tmp_path / "x.jsonl", {"q": "abc"}, ["q"])
