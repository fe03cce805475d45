"""The report's task sections built from predictions: confusion tables and VQA accuracy per question kind."""
from stages import report
from stages.common import paths
from storage.tables import table_path, write_table


def _vqa_row(qid, subset):
    return {"question_id": qid, "image_id": "i", "question": "q?", "answers": ["red"] * 10, "answer_type": "other",
            "split": "test", "subset": subset}


def test_kinds_come_from_the_vqa_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_table(table_path(paths.prepared("toy"), "vqa"), "vqa",
                [_vqa_row("q1", "color"), _vqa_row("q2", "shape"), _vqa_row("q3", None)])
    rows = [{"id": q, "truth": ["red"] * 10, "prediction": p, "blind": "red", "answer_type": "other"}
            for q, p in (("q1", "red"), ("q2", "blue"), ("q3", "red"))]
    blocks = report.kind_blocks("toy", rows, prior="blue")
    assert blocks[1] == ("table", ["question kind", "questions", "model", "blind", "prior"],
                         [["color", "1", "1.0000", "1.0000", "0.0000"], ["shape", "1", "0.0000", "1.0000", "0.0000"]])
    write_table(table_path(paths.prepared("toy"), "vqa"), "vqa", [_vqa_row("q1", None)])
    assert report.kind_blocks("toy", rows, prior="blue") == []     # no kinds marked: no table


def test_confusion_table_cells_are_model_then_blind(tmp_path):
    rows = [{"id": "a", "truth": "true", "prediction": "true", "blind": "false"},
            {"id": "b", "truth": "false", "prediction": "true", "blind": "false"}]
    text, table, figure = report.confusion_blocks("nlvr2", "toy", rows)
    assert "2 labelled test samples" in text[1]
    assert table[1] == ["true label \\ predicted label", "false", "true"]
    assert table[2] == [["false", "0 / 1", "1 / 0"], ["true", "0 / 1", "1 / 0"]]
    assert figure[0] == "img" and figure[2].startswith(b"\x89PNG")
    assert report.confusion_blocks("nlvr2", "toy", []) == []
