"""NLVR2 adapter on fixtures in the official layout: JSON lines, two images per item named from the identifier."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import BAD, image, run, write_jsonl


def _item(identifier, sentence, label, **extra):
    stem = identifier.rsplit("-", 1)[0]
    return {"identifier": identifier, "sentence": sentence, "label": label, "validation": {}, "synset": "dog",
            "query": "dogs", "writer": "w1", "left_url": f"http://x/{stem}-img0", "right_url": f"http://x/{stem}-img1",
            "extra_validations": {}, **extra}


def _nlvr2(tmp_path):
    ann, imgs = tmp_path / "nlvr2", tmp_path / "nlvr2-images"
    write_jsonl(ann / "train.json", [
        _item("train-10-0-0", "There are two dogs.", "True", directory=7),
        _item("train-10-0-1", "There is one dog.", "False", directory=7),         # same image pair
        _item("train-11-1-0", "Missing images.", "True", directory=7),
        _item("train-10-0-2", "Not a label.", "maybe", directory=7),
        _item("train-10-0-3", f"A {BAD}.", "True", directory=7),
        _item("bad_identifier", "x", "True"), '{"identifier": "train-10-0-4"',
        {"identifier": "train-10-0-5", "label": "True"}, _item("train-10-0-0", "Repeated.", "True", directory=7)])
    write_jsonl(ann / "dev.json", [_item("dev-850-0-0", "A sentence.", "False")])
    write_jsonl(ann / "test1.json", [_item("test1-0-1-0", "Another sentence.", "True")])
    for k in (0, 1):
        image(imgs / "train" / "7" / f"train-10-0-img{k}.png", seed=k)
        image(imgs / "dev" / f"dev-850-0-img{k}.png", seed=k)
        image(imgs / "test1" / f"test1-0-1-img{k}.png", seed=k)
    return {"annotations": str(ann), "images": str(imgs)}


def test_nlvr2_rows_images_and_rejects(workspace, tmp_path):
    counts, t, why = run(workspace, "nlvr2", _nlvr2(tmp_path))
    rows = {r["pair_id"]: r for r in t["nlvr2"]}
    assert rows["train-10-0-0"] == {"pair_id": "train-10-0-0", "left_image_id": "nlvr2-train-10-0-img0",
                                    "right_image_id": "nlvr2-train-10-0-img1", "sentence": "There are two dogs.",
                                    "label": True, "split": "train", "subset": None}
    assert rows["train-10-0-1"]["label"] is False
    assert (rows["dev-850-0-0"]["split"], rows["test1-0-1-0"]["split"], rows["test1-0-1-0"]["subset"]) == \
        ("val", "test", "test1")
    paths = {r["image_id"]: r["path"] for r in t["images"]}
    assert paths["nlvr2-train-10-0-img1"].endswith("train/7/train-10-0-img1.png")
    assert paths["nlvr2-dev-850-0-img0"].endswith("dev/dev-850-0-img0.png")
    assert why["nlvr2:train-11-1-0"] == "unknown or rejected image 'nlvr2-train-11-1-img0'"
    assert why["nlvr2:train-10-0-2"] == "NLVR2 label must be true/false, got 'maybe'"
    assert why["nlvr2:train.json#5"] == "not UTF-8 text"          # the line cannot be read: no identifier
    assert why["nlvr2:bad_identifier"].startswith("identifier 'bad_identifier' is not")
    assert why["nlvr2:train.json#7"].startswith("malformed JSON")
    assert why["nlvr2:train-10-0-5"] == "missing field 'sentence'"
    assert why["nlvr2:train-10-0-0"] == "duplicate id"
    assert counts["nlvr2"] == {"given": 11, "accepted": 4, "rejected": 7}
    assert counts["images"] == {"given": 8, "accepted": 6, "rejected": 2}   # shared pairs count once


def test_missing_annotation_file(workspace, tmp_path):
    section = _nlvr2(tmp_path)
    (tmp_path / "nlvr2" / "test1.json").unlink()
    workspace({"datasets": ["nlvr2"], "prepare": {"nlvr2": section}})
    with pytest.raises(DatasetError, match=r"test1\.json not found: .*lil-lab/nlvr"):
        prepare.run("nlvr2")
