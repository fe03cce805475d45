"""SNLI-VE adapter on fixtures in the official JSONL layout."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import BAD, image, run, write_jsonl


def _pair(pid, img, hyp, label):
    return {"Flickr30K_ID": img, "sentence1": "A man rides a horse.", "sentence2": hyp, "gold_label": label,
            "pairID": pid, "captionID": f"{img}.jpg#0", "annotator_labels": [label]}


def _snli(tmp_path):
    ann, imgs = tmp_path / "snli_ve", tmp_path / "flickr30k-images"
    write_jsonl(ann / "snli_ve_train.jsonl", [
        _pair("p1", "1000", "A person is outdoors.", "entailment"),
        _pair("p2", "1000", "The man sleeps.", "contradiction"),
        _pair("p3", "1000", f"A {BAD}.", "neutral"), '{"pairID": "p4", "Flickr30K_ID": "1000"',
        {"pairID": "p5", "Flickr30K_ID": "1000", "gold_label": "neutral"}, _pair("p6", "1000", "Maybe.", "-"),
        _pair("p7", "4040", "No image.", "neutral"), _pair("p1", "1000", "Repeated pair id.", "neutral")])
    write_jsonl(ann / "snli_ve_dev.jsonl", [_pair("d1", "2000", "A dog runs.", "neutral")])
    write_jsonl(ann / "snli_ve_test.jsonl", [_pair("t1", "3000", "A cat sits.", "entailment")])
    for img in ("1000", "2000", "3000"):
        image(imgs / f"{img}.jpg")
    return {"annotations": str(ann), "images": str(imgs)}


def test_snli_ve_rows_and_rejects(workspace, tmp_path):
    counts, t, why = run(workspace, "snli_ve", _snli(tmp_path))
    ve = {r["pair_id"]: r for r in t["ve"]}
    assert ve["p1"] == {"pair_id": "p1", "image_id": "flickr30k-1000", "hypothesis": "A person is outdoors.",
                        "label": "entailment", "split": "train", "subset": None}
    assert (ve["d1"]["split"], ve["t1"]["split"], ve["p2"]["label"]) == ("val", "test", "contradiction")
    assert why["ve:snli_ve_train.jsonl#3"] == "not UTF-8 text"
    assert why["ve:snli_ve_train.jsonl#4"].startswith("malformed JSON")
    assert why["ve:snli_ve_train.jsonl#5"] == "missing field 'sentence2'"
    assert why["ve:p6"].startswith("unknown VE label '-'")
    assert why["ve:p7"] == "unknown or rejected image 'flickr30k-4040'"
    assert why["ve:p1"] == "duplicate id"
    assert counts["ve"] == {"given": 10, "accepted": 4, "rejected": 6}


def test_missing_images_folder(workspace, tmp_path):
    section = _snli(tmp_path) | {"images": str(tmp_path / "nowhere")}
    workspace({"datasets": ["snli_ve"], "prepare": {"snli_ve": section}})
    with pytest.raises(DatasetError, match=r"images folder not found: .*nowhere .*github\.com/necla-ml/SNLI-VE"):
        prepare.run("snli_ve")
