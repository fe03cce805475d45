"""COCO / Flickr30K Karpathy-split adapter on fixtures in the official dataset_*.json layout."""
import pytest

from stages import prepare
from storage.adapters import karpathy
from storage.adapters.base import DatasetError
from tests.storage.official_layout import BAD, image, run, write_json


def _coco_image(cocoid, split, sents, folder="val2014", **extra):
    rec = {"filepath": folder, "filename": f"COCO_{folder}_{cocoid:012d}.jpg", "imgid": cocoid, "split": split,
           "cocoid": cocoid, "sentids": [s["sentid"] for s in sents if isinstance(s, dict) and "sentid" in s],
           "sentences": sents}
    rec.update(extra)
    return rec


def _sent(sid, raw):
    return {"tokens": raw.lower().split(), "raw": raw, "imgid": 0, "sentid": sid}


def _coco(tmp_path):
    ann, imgs = tmp_path / "coco", tmp_path / "coco-images"
    records = [
        _coco_image(1, "train", [_sent(10, "a cat on a mat"), _sent(11, "a small cat")], folder="train2014"),
        _coco_image(2, "restval", [_sent(20, "two dogs"), {"sentid": 21, "imgid": 2}]),       # no "raw"
        _coco_image(3, "val", [_sent(30, f"a {BAD} table"), _sent(31, "  ")]),              # non-UTF-8, empty
        *[_coco_image(100 + k, "test", [_sent(1000 + k, f"test image {k}")]) for k in range(5)],
        _coco_image(7, "dev", [_sent(70, "bad split")]),
        {"filepath": "val2014", "split": "train", "cocoid": 8, "sentences": [_sent(80, "x"), _sent(81, "y")]},
        _coco_image(9, "train", [_sent(90, "its image file is missing"), _sent(10, "duplicate sentid")]),
    ]
    write_json(ann / "dataset_coco.json", {"images": records, "dataset": "coco"})
    for r in records:
        if r.get("cocoid") != 9 and "filename" in r:
            image(imgs / r["filepath"] / r["filename"], seed=r["cocoid"])
    return {"annotations": str(ann), "images": str(imgs)}


def test_coco_rows_folds_and_rejects(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(karpathy, "FOLD", 2)   # 1K folds scaled down: 2 test images per fold
    counts, t, why = run(workspace, "coco", _coco(tmp_path))
    images = {r["image_id"]: r for r in t["images"]}
    assert set(images) == {"coco-1", "coco-2", "coco-3", *(f"coco-{100 + k}" for k in range(5))}
    assert images["coco-1"]["path"].endswith("train2014/COCO_train2014_000000000001.jpg")
    assert (images["coco-2"]["split"], images["coco-2"]["subset"]) == ("train", "restval")
    assert [images[f"coco-{100 + k}"]["subset"] for k in range(5)] == ["fold0", "fold0", "fold1", "fold1", "fold2"]
    caps = {r["caption_id"]: r for r in t["captions"]}
    assert caps["10"] == {"caption_id": "10", "image_id": "coco-1", "text": "a cat on a mat", "split": "train",
                          "subset": None}
    assert caps["20"]["subset"] == "restval" and caps["1003"]["subset"] == "fold1"
    assert why["captions:21"] == "missing field 'raw'"
    assert why["captions:30"] == "not UTF-8 text"
    assert why["captions:31"] == "empty text"
    assert why["images:#8"] == "unknown Karpathy split 'dev' (allowed: train, restval, val, test)"
    assert why["captions:70"].startswith("its image record #8 was rejected")
    assert why["images:#9"] == "missing field 'filename'"
    assert why["captions:80"].startswith("its image record #9") and "captions:81" in why
    assert "missing file" in why["images:coco-9"]
    assert why["captions:90"] == "unknown or rejected image 'coco-9'"
    assert why["captions:10"] == "duplicate id"   # the second sentid 10 (image 9)
    assert counts["images"] == {"given": 11, "accepted": 8, "rejected": 3}
    assert counts["captions"] == {"given": 16, "accepted": 8, "rejected": 8}


def test_flickr30k_layout(workspace, tmp_path):
    ann, imgs = tmp_path / "f30k", tmp_path / "flickr30k-images"
    records = [{"filename": f"{1000 + i}.jpg", "imgid": i, "split": split, "sentids": [i],
                "sentences": [_sent(i, f"caption {i}")]} for i, split in enumerate(["train", "val", "test"])]
    write_json(ann / "dataset_flickr30k.json", {"images": records, "dataset": "flickr30k"})
    for r in records:
        image(imgs / r["filename"])
    counts, t, why = run(workspace, "flickr30k", {"annotations": str(ann), "images": str(imgs)})
    assert [(r["image_id"], r["split"], r["subset"]) for r in t["images"]] == [
        ("flickr30k-1000", "train", None), ("flickr30k-1001", "val", None), ("flickr30k-1002", "test", None)]
    assert [r["text"] for r in t["captions"]] == ["caption 0", "caption 1", "caption 2"]
    assert not why


def test_structural_problems_are_dataset_errors(workspace, tmp_path):
    workspace({"datasets": ["coco"]})
    with pytest.raises(DatasetError, match=r"prepare\.coco\.annotations"):
        prepare.run("coco")
    ann, imgs = tmp_path / "coco", tmp_path / "imgs"
    (imgs / "val2014").mkdir(parents=True)
    workspace({"datasets": ["coco"], "prepare": {"coco": {"annotations": str(ann), "images": str(imgs)}}})
    with pytest.raises(DatasetError, match=r"dataset_coco\.json not found: .*coco/dataset_coco\.json "
                                           r"\(the official release is published at https://cs\.stanford\.edu"):
        prepare.run("coco")
    ann.mkdir()
    (ann / "dataset_coco.json").write_text('{"images": [{"filepath": "val2014", ')
    with pytest.raises(DatasetError, match="dataset_coco.json: not valid JSON"):
        prepare.run("coco")
    write_json(ann / "dataset_coco.json", {"dataset": "coco"})
    with pytest.raises(DatasetError, match="no records found"):
        prepare.run("coco")
