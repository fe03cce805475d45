"""Visual Genome region-description adapter on fixtures in the official layout."""
import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import BAD, image, run, write_json


def _region(rid, img, phrase):
    return {"region_id": rid, "width": 10, "height": 10, "image_id": img, "phrase": phrase, "x": 0, "y": 0}


def _vg(tmp_path):
    ann, imgs = tmp_path / "vg", tmp_path / "vg-images"
    write_json(ann / "region_descriptions.json", [
        {"id": 1, "regions": [_region(11, 1, "a green clock"), _region(12, 1, "man wearing a hat"),
                              _region(13, 1, f"a {BAD} sign"), {"region_id": 14, "image_id": 1}]},
        {"id": 2, "regions": [_region(21, 2, "white clouds")]},
        {"id": 3, "regions": [_region(31, 3, "no image file")]},
        {"regions": [_region(41, 4, "record without id")]},
        {"id": 5, "regions": [_region(51, 5, "a COCO test image")]},
        {"id": 6, "regions": [_region(61, 6, "a COCO train image"), _region(11, 6, "repeated region id")]},
    ])
    write_json(ann / "image_data.json", [{"image_id": i, "coco_id": c, "url": f"http://x/{i}.jpg", "width": 32,
                                          "height": 32, "flickr_id": None}
                                         for i, c in ((1, None), (2, None), (5, 500), (6, 600))])
    write_json(tmp_path / "dataset_coco.json",
               {"images": [{"cocoid": 500, "split": "test"}, {"cocoid": 600, "split": "train"}]})
    image(imgs / "VG_100K" / "1.jpg")
    image(imgs / "VG_100K_2" / "2.jpg")
    image(imgs / "VG_100K" / "5.jpg")
    image(imgs / "VG_100K_2" / "6.jpg")
    return {"annotations": str(ann), "images": str(imgs), "val_fraction": 0.0}


def test_vg_regions_become_captions(workspace, tmp_path):
    counts, t, why = run(workspace, "vg", _vg(tmp_path) | {"exclude_coco": str(tmp_path / "dataset_coco.json")})
    caps = {r["caption_id"]: r for r in t["captions"]}
    assert caps["11"] == {"caption_id": "11", "image_id": "vg-1", "text": "a green clock", "split": "train",
                          "subset": None}
    assert set(caps) == {"11", "12", "21", "61"}
    assert {r["image_id"]: r["path"].split("/")[-2] for r in t["images"]} == {
        "vg-1": "VG_100K", "vg-2": "VG_100K_2", "vg-6": "VG_100K_2"}
    assert why["captions:13"] == "not UTF-8 text"
    assert why["captions:14"] == "missing field 'phrase'"
    assert "missing file" in why["images:vg-3"] and why["captions:31"] == "unknown or rejected image 'vg-3'"
    assert why["images:#3"] == "missing field 'id'" and why["captions:41"].startswith("its image record #3")
    assert why["images:5"].startswith("a COCO Karpathy val/test image")
    assert why["captions:51"].startswith("its image record 5 was rejected")
    assert why["captions:11"] == "duplicate id"
    assert counts["captions"] == {"given": 10, "accepted": 4, "rejected": 6}
    assert counts["images"] == {"given": 6, "accepted": 3, "rejected": 3}


def test_val_carve_and_missing_files(workspace, tmp_path):
    section = _vg(tmp_path)
    _, t, _ = run(workspace, "vg", section | {"val_fraction": 0.5})
    by_image = {}
    for r in t["captions"]:
        by_image.setdefault(r["image_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_image.values())        # carved by image
    assert set().union(*by_image.values()) == {"train", "val"}
    workspace({"datasets": ["vg"], "prepare": {"vg": section | {"exclude_coco": str(tmp_path / "nope.json")}}})
    with pytest.raises(DatasetError, match="exclude_coco names .*nope.json, which does not exist"):
        prepare.run("vg")
    (tmp_path / "vg" / "region_descriptions.json").unlink()
    workspace({"datasets": ["vg"], "prepare": {"vg": section}})
    with pytest.raises(DatasetError, match=r"region_descriptions\.json not found: .*ranjay/visualgenome"):
        prepare.run("vg")
