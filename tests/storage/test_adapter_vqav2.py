"""VQAv2 adapter on fixtures in the official questions/annotations layout, test-dev and test-std included."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from storage.adapters.vqav2 import annotations_file, questions_file
from tests.storage.official_layout import BAD, image, run, write_json


def _q(qid, img, text="what is it?"):
    return {"question_id": qid, "image_id": img, "question": text}


def _a(qid, img, answers=("cat",) * 10, atype="other"):
    return {"question_id": qid, "image_id": img, "answer_type": atype, "question_type": "what",
            "multiple_choice_answer": answers[0],
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]}


def _questions(subset, qs):
    return {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": subset,
            "questions": qs}


def _annotations(subset, anns):
    return {"info": {}, "license": {}, "data_subtype": subset, "annotations": anns}


def _vqav2(tmp_path):
    ann, imgs = tmp_path / "vqav2", tmp_path / "coco"
    write_json(ann / questions_file("train2014"), _questions("train2014", [
        _q(10, 1), _q(11, 1, "is it red?"), _q(11, 1, "repeated id"),
        _q(12, 1), _q(13, 1), {"question_id": 14, "image_id": 1},          # 13 has no annotation; 14 no text
        _q(15, 999), _q(16, 1, f"a {BAD} question"), _q(17, 1), _q(18, "x"),
    ]))
    write_json(ann / annotations_file("train2014"), _annotations("train2014", [
        _a(10, 1), _a(11, 1, ("yes",) * 10, "yes/no"), _a(12, 2), _a(15, 999), _a(16, 1), _a(40, 1),
        {"question_id": 17, "image_id": 1, "answer_type": "other", "answers": "cat"}, _a(10, 1),
    ]))
    write_json(ann / questions_file("val2014"), _questions("val2014", [_q(20, 2)]))
    write_json(ann / annotations_file("val2014"), _annotations("val2014", [_a(20, 2, ("2",) * 10, "number")]))
    write_json(ann / questions_file("test-dev2015"), _questions("test-dev2015", [_q(30, 100)]))
    write_json(ann / questions_file("test2015"), _questions("test2015", [_q(30, 100), _q(31, 100), _q(32, 101)]))
    image(imgs / "train2014" / "COCO_train2014_000000000001.jpg")
    image(imgs / "val2014" / "COCO_val2014_000000000002.jpg")
    for i in (100, 101):
        image(imgs / "test2015" / f"COCO_test2015_{i:012d}.jpg")
    return {"annotations": str(ann), "images": str(imgs)}


def test_vqav2_rows_test_subsets_and_rejects(workspace, tmp_path):
    counts, t, why = run(workspace, "vqav2", _vqav2(tmp_path))
    vqa = {r["question_id"]: r for r in t["vqa"]}
    assert vqa["10"] == {"question_id": "10", "image_id": "coco-1", "question": "what is it?", "answers": ["cat"] * 10,
                         "answer_type": "other", "split": "train", "subset": None}
    assert vqa["11"]["answers"] == ["yes"] * 10 and vqa["11"]["answer_type"] == "yes/no"
    assert vqa["20"]["split"] == "val" and vqa["20"]["answer_type"] == "number"
    assert {q: (vqa[q]["split"], vqa[q]["subset"], vqa[q]["answers"], vqa[q]["answer_type"])
            for q in ("30", "31", "32")} == {"30": ("test", "test-dev2015", [], None),
                                             "31": ("test", "test2015", [], None),
                                             "32": ("test", "test2015", [], None)}
    assert {r["image_id"]: r["split"] for r in t["images"]} == {"coco-1": "train", "coco-2": "val",
                                                                "coco-100": "test", "coco-101": "test"}
    assert why["vqa:11"] == "duplicate question id in train2014"
    assert why["vqa:12"].startswith("annotation image_id 2 differs")
    assert why["vqa:13"] == "question without an annotation in v2_mscoco_train2014_annotations.json"
    assert why["vqa:14"] == "missing field 'question'"
    assert why["images:coco-999"].startswith("missing file")
    assert "COCO_train2014_000000000999.jpg" in why["images:coco-999"]
    assert why["vqa:15"] == "unknown or rejected image 'coco-999'"
    assert why["vqa:16"].startswith("not UTF-8 text")   # (its annotation is then an orphan, a 2nd reject)
    assert why["vqa:17"].startswith('"answers" must be a list')
    assert why["vqa:18"] == "bad image_id 'x'"
    assert why["vqa:40"].startswith("annotation of an unknown or already annotated question")
    assert why["vqa:10"].startswith("annotation of an unknown or already annotated question")   # annotated twice
    assert counts["vqa"] == {"given": 17, "accepted": 6, "rejected": 11}
    assert counts["images"] == {"given": 5, "accepted": 4, "rejected": 1}


def test_splits_param_reads_only_those_files(workspace, tmp_path):
    section = _vqav2(tmp_path)
    (tmp_path / "vqav2" / questions_file("test2015")).unlink()
    counts, t, _ = run(workspace, "vqav2", section | {"splits": ["val2014", "test-dev2015"]})
    assert sorted(r["question_id"] for r in t["vqa"]) == ["20", "30"]
    workspace({"datasets": ["vqav2"], "prepare": {"vqav2": section}})
    with pytest.raises(DatasetError, match=r"v2_OpenEnded_mscoco_test2015_questions\.json not found: .*"
                                           r"published at https://visualqa\.org/download\.html"):
        prepare.run("vqav2")


def test_structurally_wrong_files(workspace, tmp_path):
    section = _vqav2(tmp_path)
    workspace({"datasets": ["vqav2"], "prepare": {"vqav2": section | {"splits": ["val2014"]}}})
    (tmp_path / "vqav2" / annotations_file("val2014")).write_bytes(b'{"annotations": [{"question_id": 20,')
    with pytest.raises(DatasetError, match="v2_mscoco_val2014_annotations.json: not valid JSON"):
        prepare.run("vqav2")
    write_json(tmp_path / "vqav2" / questions_file("val2014"), [_q(20, 2)])   # a list, not {"questions": [...]}
    write_json(tmp_path / "vqav2" / annotations_file("val2014"), _annotations("val2014", []))
    with pytest.raises(DatasetError, match="no records found"):
        prepare.run("vqav2")
