"""VQA-CP v2 adapter on fixtures in the official layout: top-level lists with coco_split."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import BAD, image, run, write_json


def _q(qid, img, coco_split, text="how many?"):
    return {"question_id": qid, "image_id": img, "question": text, "coco_split": coco_split}


def _a(qid, img, coco_split, answer="2", atype="number"):
    return {"question_id": qid, "image_id": img, "coco_split": coco_split, "answer_type": atype,
            "question_type": "how many", "multiple_choice_answer": answer,
            "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": i + 1} for i in range(10)]}


def _vqacp(tmp_path):
    ann, imgs = tmp_path / "vqacp", tmp_path / "coco"
    train_q = [_q(1, 1, "train2014"), _q(2, 2, "val2014"), _q(3, 1, "train2014", BAD), _q(4, 5, "train2014"),
               {"question_id": 5, "image_id": 1}, _q(6, 1, "train2014"), _q(6, 2, "val2014")]
    train_a = [_a(1, 1, "train2014"), _a(2, 2, "val2014", "yes", "yes/no"), _a(4, 5, "train2014"),
               _a(6, 1, "train2014"), _a(99, 1, "train2014")]
    write_json(ann / "vqacp_v2_train_questions.json", train_q)
    write_json(ann / "vqacp_v2_train_annotations.json", train_a)
    write_json(ann / "vqacp_v2_test_questions.json", [_q(7, 1, "train2014"), _q(8, 3, "val2014")])
    write_json(ann / "vqacp_v2_test_annotations.json", [_a(7, 1, "train2014"), _a(8, 3, "val2014", "red", "other")])
    image(imgs / "train2014" / "COCO_train2014_000000000001.jpg")
    image(imgs / "val2014" / "COCO_val2014_000000000002.jpg")
    image(imgs / "val2014" / "COCO_val2014_000000000003.jpg")
    return {"annotations": str(ann), "images": str(imgs)}


def test_vqacp_rows_and_rejects(workspace, tmp_path):
    counts, t, why = run(workspace, "vqacp_v2", _vqacp(tmp_path))
    vqa = {r["question_id"]: r for r in t["vqa"]}
    assert {q: (r["image_id"], r["split"], r["answer_type"]) for q, r in vqa.items()} == {
        "1": ("coco-1", "train", "number"), "2": ("coco-2", "train", "yes/no"), "6": ("coco-1", "train", "number"),
        "7": ("coco-1", "test", "number"), "8": ("coco-3", "test", "other")}   # image 1 serves train and test
    assert vqa["8"]["answers"] == ["red"] * 10
    assert {r["image_id"]: r["path"].split("/")[-2] for r in t["images"]} == {
        "coco-1": "train2014", "coco-2": "val2014", "coco-3": "val2014"}
    assert why["vqa:3"].startswith("not UTF-8 text")
    assert why["images:coco-5"].startswith("missing file") and why["vqa:4"] == "unknown or rejected image 'coco-5'"
    assert why["vqa:5"].startswith("missing field 'question'")
    assert why["vqa:6"] == "duplicate question id in vqacp_v2_train_questions.json"
    assert why["vqa:99"].startswith("annotation of an unknown")
    assert counts["vqa"]["accepted"] == 5


def test_val_carved_from_train_only(workspace, tmp_path):
    _, t, _ = run(workspace, "vqacp_v2", _vqacp(tmp_path) | {"val_fraction": 0.5, "seed": 0})
    splits = {r["question_id"]: r["split"] for r in t["vqa"]}
    assert splits["7"] == splits["8"] == "test"                   # test questions never move
    moved = {r["image_id"] for r in t["images"] if r["split"] == "val"}
    assert moved == {"coco-1"}                                    # seeded: 2 of the 3 train images (one is rejected)
    assert all((splits[r["question_id"]] == "val") == (r["image_id"] in moved)
               for r in t["vqa"] if r["question_id"] not in ("7", "8"))


def test_missing_file_names_the_release(workspace, tmp_path):
    section = _vqacp(tmp_path)
    (tmp_path / "vqacp" / "vqacp_v2_test_annotations.json").unlink()
    workspace({"datasets": ["vqacp_v2"], "prepare": {"vqacp_v2": section}})
    with pytest.raises(DatasetError, match=r"vqacp_v2_test_annotations\.json not found: .*aagrawal307/vqa-cp"):
        prepare.run("vqacp_v2")
    _, t, _ = run(workspace, "vqacp_v2", section | {"splits": ["train"]})
    assert {r["split"] for r in t["vqa"]} == {"train"}
