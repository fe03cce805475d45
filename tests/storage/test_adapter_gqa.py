"""GQA adapter on fixtures in the official balanced-questions layout (a top-level object by question id)."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import BAD, image, run, write_json


def _q(img, question, answer):
    return {"semantic": [], "entailed": [], "equivalent": [], "question": question, "imageId": img,
            "isBalanced": True, "groups": {"global": None, "local": "10q"}, "answer": answer,
            "semanticStr": "", "annotations": {}, "types": {"detailed": "x", "semantic": "attr", "structural": "query"},
            "fullAnswer": answer}


def _gqa(tmp_path):
    ann, imgs = tmp_path / "gqa", tmp_path / "gqa-images"
    write_json(ann / "train_balanced_questions.json", {
        "201": _q("2354786", "Is the sky blue?", "yes"), "202": _q("2354786", "What color is the car?", "red"),
        "203": _q("2354786", f"Is it {BAD}?", "no"), "204": {"imageId": "2354786", "answer": "no"},
        "205": _q("404", "What is it?", "cat"), "206": _q(7, "Numeric image id?", "cat")})
    write_json(ann / "val_balanced_questions.json", {"301": _q("2368326", "How many cats?", "2"),
                                                     "201": _q("2368326", "Same id as a train question?", "no")})
    write_json(ann / "testdev_balanced_questions.json", {"401": _q("n161313", "Which side is the cup on?", "left")})
    for img in ("2354786", "2368326", "n161313"):
        image(imgs / f"{img}.jpg")
    return {"annotations": str(ann), "images": str(imgs)}


def test_gqa_rows_and_rejects(workspace, tmp_path):
    counts, t, why = run(workspace, "gqa", _gqa(tmp_path))
    vqa = {r["question_id"]: r for r in t["vqa"]}
    assert vqa["201"] == {"question_id": "201", "image_id": "gqa-2354786", "question": "Is the sky blue?",
                          "answers": ["yes"] * 10, "answer_type": "yes/no", "split": "train", "subset": None}
    assert (vqa["202"]["answer_type"], vqa["301"]["answer_type"], vqa["301"]["split"]) == ("other", "number", "val")
    assert (vqa["401"]["split"], vqa["401"]["subset"], vqa["401"]["image_id"]) == ("test", "testdev", "gqa-n161313")
    assert why["vqa:203"] == "not UTF-8 text"
    assert why["vqa:204"] == "missing field 'question'"
    assert why["vqa:205"] == "unknown or rejected image 'gqa-404'" and "missing file" in why["images:gqa-404"]
    assert why["vqa:206"].startswith('"imageId", "question" and "answer" must be strings')
    assert why["vqa:201"] == "duplicate id"                      # the val question reusing a train id
    assert counts["vqa"] == {"given": 9, "accepted": 4, "rejected": 5}


def test_missing_split_file(workspace, tmp_path):
    section = _gqa(tmp_path)
    (tmp_path / "gqa" / "testdev_balanced_questions.json").unlink()
    workspace({"datasets": ["gqa"], "prepare": {"gqa": section}})
    with pytest.raises(DatasetError, match=r"testdev_balanced_questions\.json not found: .*dorarad/gqa"):
        prepare.run("gqa")
    _, t, _ = run(workspace, "gqa", section | {"splits": ["val"]})
    assert [r["question_id"] for r in t["vqa"]] == ["301", "201"]
