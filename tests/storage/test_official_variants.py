"""Official files in circulation: older field spellings, the `images` level, and records that used to crash."""
import logging
from pathlib import Path
from typing import Any

import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from tests.storage.official_layout import image, run, write_json, write_jsonl


def test_snli_ve_original_generator_spelling(workspace, tmp_path):
    """The SNLI-VE generator's files name the image `Flikr30kID`, with the .jpg suffix."""
    ann, imgs = tmp_path / "snli_ve", tmp_path / "flickr30k-images"
    write_jsonl(ann / "snli_ve_dev.jsonl", [
        {"Flikr30kID": "1000.jpg", "sentence2": "A dog runs.", "gold_label": "neutral", "pairID": "d1"},
        {"Flickr30K_ID": "1000", "sentence2": "A dog sits.", "gold_label": "entailment", "pairID": "d2"}])
    image(imgs / "1000.jpg")
    counts, t, why = run(workspace, "snli_ve", {"annotations": str(ann), "images": str(imgs), "splits": ["dev"]})
    assert [(r["pair_id"], r["image_id"]) for r in t["ve"]] == [("d1", "flickr30k-1000"), ("d2", "flickr30k-1000")]
    assert not why


def _vg(tmp_path: Path, image_data: list[dict[str, Any]], coco_split: str = "test") -> dict[str, Any]:
    ann, imgs = tmp_path / "vg", tmp_path / "vg-images"
    write_json(ann / "region_descriptions.json", [
        {"id": i, "regions": [{"region_id": 10 * i, "image_id": i, "phrase": f"thing {i}"}]} for i in (1, 2)])
    write_json(ann / "image_data.json", image_data)
    write_json(tmp_path / "dataset_coco.json", {"images": [{"cocoid": 500, "split": coco_split}]})
    for i in (1, 2):
        image(imgs / "VG_100K" / f"{i}.jpg", seed=i)
    return {"annotations": str(ann), "images": str(imgs), "val_fraction": 0.0,
            "exclude_coco": str(tmp_path / "dataset_coco.json")}


def test_vg_older_image_data_keys_images_by_id(workspace, tmp_path, caplog):
    section = _vg(tmp_path, [{"id": 1, "coco_id": None}, {"id": 2, "coco_id": 500}])
    with caplog.at_level(logging.INFO, logger="storage.adapters.vg"):
        counts, t, why = run(workspace, "vg", section)
    assert [r["image_id"] for r in t["images"]] == ["vg-1"]
    assert why["images:2"].startswith("a COCO Karpathy val/test image")
    assert "vg: exclude_coco left out 1 image(s)" in caplog.text


def test_vg_exclude_coco_refuses_to_match_nothing(workspace, tmp_path):
    section = _vg(tmp_path, [{"image_id": 1, "coco_id": None}, {"image_id": 2, "coco_id": 500}], coco_split="train")
    workspace({"datasets": ["vg"], "prepare": {"vg": section}})
    with pytest.raises(DatasetError, match=r"vg: exclude_coco matched no image: none of the 1 image_data\.json "
                                           r"record\(s\) with a coco_id is a Karpathy val/test image"):
        prepare.run("vg")


def test_images_level_is_checked(workspace, tmp_path):
    """flickr30k wants the image folder itself, coco the parent of train2014/ val2014/: a wrong level is named."""
    ann = tmp_path / "ann"
    write_json(ann / "dataset_flickr30k.json", {"images": [
        {"filename": "1000.jpg", "split": "train", "sentences": [{"raw": "a cat", "sentid": 1}]}]})
    image(tmp_path / "f30k" / "flickr30k-images" / "1000.jpg")
    workspace({"datasets": ["flickr30k"], "prepare": {"flickr30k": {"annotations": str(ann),
                                                                     "images": str(tmp_path / "f30k")}}})
    with pytest.raises(DatasetError, match=r"flickr30k: prepare\.flickr30k\.images .*f30k holds flickr30k-images/ "
                                           r"but no images; set it to .*f30k/flickr30k-images"):
        prepare.run("flickr30k")
    write_json(ann / "dataset_coco.json", {"images": [
        {"filepath": "val2014", "filename": "x.jpg", "split": "val", "cocoid": 1, "sentences": []}]})
    image(tmp_path / "coco" / "val2014" / "x.jpg")
    workspace({"datasets": ["coco"], "prepare": {"coco": {"annotations": str(ann),
                                                           "images": str(tmp_path / "coco" / "val2014")}}})
    with pytest.raises(DatasetError, match=r"coco: prepare\.coco\.images .*val2014 holds none of train2014/, "
                                           r"val2014/ \(it is one of them: set it to its parent .*/coco\)"):
        prepare.run("coco")


def test_a_record_that_breaks_the_adapter_is_one_reject(workspace, tmp_path):
    """A Karpathy split given as a list (unhashable) and a COCO-QA image id of non-ASCII digits used to crash."""
    ann, imgs = tmp_path / "f30k", tmp_path / "flickr30k-images"
    write_json(ann / "dataset_flickr30k.json", {"images": [
        {"filename": "1.jpg", "split": ["train"], "sentences": [{"raw": "a", "sentid": 1}]},
        {"filename": "2.jpg", "split": "train", "sentences": [{"raw": "b", "sentid": 2}]}]})
    image(imgs / "2.jpg")
    counts, t, why = run(workspace, "flickr30k", {"annotations": str(ann), "images": str(imgs)})
    assert why["images:#0"].startswith("unusable record: TypeError")
    assert [r["caption_id"] for r in t["captions"]] == ["2"]
    qa = tmp_path / "cocoqa" / "train"
    qa.mkdir(parents=True)
    files = {"questions": "what\nwhat\n", "answers": "a\nb\n", "img_ids": "²\n1\n", "types": "0\n0\n"}
    for name, text in files.items():
        (qa / f"{name}.txt").write_text(text)
    image(tmp_path / "coco" / "train2014" / "COCO_train2014_000000000001.jpg")
    counts, t, why = run(workspace, "cocoqa", {"annotations": str(tmp_path / "cocoqa"), "splits": ["train"],
                                               "images": str(tmp_path / "coco"), "val_fraction": 0.0})
    assert why["vqa:train-000000"] == "bad image id '²'"
    assert counts["vqa"] == {"given": 2, "accepted": 1, "rejected": 1}
