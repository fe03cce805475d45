"""COCO-QA adapter on fixtures in the official layout: train/ and test/ with four aligned txt files."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import image, run


def _write(folder, questions, answers, img_ids, types):
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("questions", questions), ("answers", answers), ("img_ids", img_ids), ("types", types)):
        data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines)
        (folder / f"{name}.txt").write_bytes(data + b"\n")


def _cocoqa(tmp_path):
    ann, imgs = tmp_path / "cocoqa", tmp_path / "coco"
    _write(ann / "train",
           ["what is on the table", "how many dogs are there", "what is the color of the bus",
            "where is the cat", b"what is the caf\xe9", "what is this", "what is that", "what is here"],
           ["cup", "two", "red", "bed", "x", "dog", "cat", "pen"],
           ["1", "1", "2", "2", "1", "77", "abc", "1"],
           ["0", "1", "2", "3", "0", "0", "0", "5"])
    _write(ann / "test", ["what is in the sky"], ["kite"], ["3"], ["0"])
    image(imgs / "train2014" / "COCO_train2014_000000000001.jpg")
    image(imgs / "train2014" / "COCO_train2014_000000000002.jpg")
    image(imgs / "val2014" / "COCO_val2014_000000000003.jpg")
    return {"annotations": str(ann), "images": str(imgs), "val_fraction": 0.0}


def test_cocoqa_rows_types_and_rejects(workspace, tmp_path):
    counts, t, why = run(workspace, "cocoqa", _cocoqa(tmp_path))
    vqa = {r["question_id"]: r for r in t["vqa"]}
    assert {q: (r["answer_type"], r["subset"]) for q, r in vqa.items()} == {
        "train-000000": ("other", "object"), "train-000001": ("number", "number"),
        "train-000002": ("other", "color"), "train-000003": ("other", "location"), "test-000000": ("other", "object")}
    assert vqa["train-000000"]["answers"] == ["cup"] * 10 and vqa["train-000000"]["image_id"] == "coco-1"
    assert vqa["test-000000"]["split"] == "test"
    assert {r["image_id"]: r["path"].split("/")[-2] for r in t["images"]} == {
        "coco-1": "train2014", "coco-2": "train2014", "coco-3": "val2014"}
    assert why["vqa:train-000004"] == "not UTF-8 text"
    assert why["vqa:train-000005"] == "unknown or rejected image 'coco-77'"
    assert why["vqa:train-000006"] == "bad image id 'abc'"
    assert why["vqa:train-000007"].startswith("unknown COCO-QA type '5'")
    assert counts["vqa"] == {"given": 9, "accepted": 5, "rejected": 4}


def test_val_carve_and_misaligned_files(workspace, tmp_path):
    section = _cocoqa(tmp_path) | {"val_fraction": 0.5}
    _, t, _ = run(workspace, "cocoqa", section)
    assert {r["split"] for r in t["vqa"]} == {"train", "val", "test"}
    with open(tmp_path / "cocoqa" / "test" / "answers.txt", "a") as fh:
        fh.write("extra\n")
    with pytest.raises(DatasetError, match=r"test/ files must have one line per question each"):
        prepare.run("cocoqa")
    (tmp_path / "cocoqa" / "test" / "types.txt").unlink()
    with pytest.raises(DatasetError, match=r"test/types\.txt not found: .*mren/research/imageqa"):
        prepare.run("cocoqa")
