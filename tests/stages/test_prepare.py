"""The prepare stage on the custom adapter with every kind of bad input: each ends as a row or a reject."""
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from stages import prepare
from stages.common.cli import StageError
from storage.adapters.base import DatasetError


def _custom(tmp_path, bad_images):
    root = tmp_path / "imgs"
    lines = []
    for i, (name, (path, _)) in enumerate(sorted(bad_images.items())):
        lines.append(json.dumps({"image": path.name if path.parent == root else str(path), "id": name,
                                 "captions": [f"caption {i}"],
                                 "questions": [{"question": "is it ok?", "answers": ["yes"] * 3}]}))
    lines += [
        '{"image": "ok.png", "id": "ok_png"}',                      # duplicate id
        '{"image": "ok.png", "id": "broken"',                       # malformed JSON
        '["not", "an", "object"]',
        '{"id": "noimage"}',                                        # missing image
        '{"image": "ok.jpg", "id": "typo", "captions": "one string"}',
        '{"image": "ok.jpg", "id": "weird", '
        '"questions": [{"question": "q", "answers": ["a"], "answer_type": "color"}]}',
        '{"image": "ok.jpg", "id": "badsplit", "split": "dev", "captions": ["x"]}',
        '{"image": "ok.jpg", "id": "emptycap", "captions": ["  "]}',
    ]
    ann = tmp_path / "ann.jsonl"
    ann.write_bytes(("\n".join(lines) + "\n").encode() + b'{"image": "ok.png", "id": "latin1 \xe9"}\n')
    return root, ann


def test_custom_bad_inputs_all_accounted(workspace, tmp_path, bad_images):
    root, ann = _custom(tmp_path, bad_images)
    workspace({"datasets": ["custom"], "prepare": {"custom": {"root": str(root), "annotations": str(ann)}}})
    counts = prepare.run("custom")
    out = tmp_path / "data/prepared/custom"
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    reasons = {r["item"]: r["reason"] for r in rejects}
    for name, (_, usable) in bad_images.items():
        assert (f"images:{name}" not in reasons) == usable, (name, reasons.get(f"images:{name}"))
    assert "missing file" in reasons["images:missing"]
    assert "too small: 1x1" in reasons["images:1x1"]
    assert reasons["captions:missing-c0"].startswith("unknown or rejected image")
    assert "malformed JSON" in " ".join(reasons.values())
    assert "not UTF-8 text" in reasons.values()
    assert any("duplicate image id 'ok_png'" in r for r in reasons.values())
    assert "unknown answer type 'color'" in reasons["vqa:weird-q0"]
    assert "bad split 'dev'" in reasons["images:badsplit"]
    assert reasons["captions:emptycap-c0"] == "empty text"
    for table, c in counts.items():
        assert c["given"] == c["accepted"] + c["rejected"], table
    assert counts["lines"]["rejected"] == 6
    images = pq.read_table(out / "images.parquet").to_pylist()
    big = next(r for r in images if r["image_id"] == "4000x3000")
    assert (big["width"], big["height"]) == (4000, 3000)
    assert json.loads((out / "counts.json").read_text()) == counts


def test_custom_missing_files_are_clear(workspace, tmp_path):
    workspace({"datasets": ["custom"], "prepare": {"custom": {"root": str(tmp_path / "nope"), "annotations": "x"}}})
    with pytest.raises(DatasetError, match="images folder not found"):
        prepare.run("custom")
    workspace({"datasets": ["custom"]})
    with pytest.raises(DatasetError, match="prepare.custom.root"):
        prepare.run("custom")


def test_dataset_must_be_listed(workspace):
    with pytest.raises(StageError, match="not listed"):
        prepare.run("easy_vqa")


def test_easy_vqa_split_is_by_image_and_deterministic(workspace, tmp_path):
    workspace({"datasets": ["easy_vqa"]})
    counts = prepare.run("easy_vqa")
    assert counts["images"] == {"given": 5000, "accepted": 5000, "rejected": 0}
    assert counts["vqa"]["accepted"] == 38575 + 9673
    vqa = pq.read_table(tmp_path / "data/prepared/easy_vqa/vqa.parquet").to_pylist()
    splits = {}
    for r in vqa:
        splits.setdefault(r["image_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())  # an image's questions share one split
    images = pq.read_table(tmp_path / "data/prepared/easy_vqa/images.parquet").to_pylist()
    assert sum(r["split"] == "val" for r in images) == 400
    assert {r["answer_type"] for r in vqa} == {"yes/no", "other"}
    kinds = Counter(r["subset"] for r in vqa)       # train + test: every question has its kind
    assert kinds == {"yes/no color": 20658 + 5201, "yes/no shape": 7749 + 1935, "color": 5166 + 1280,
                     "shape": 5002 + 1257}
    prepare.run("easy_vqa")  # a second run carves the same validation images
    again = pq.read_table(tmp_path / "data/prepared/easy_vqa/images.parquet").to_pylist()
    assert again == images


def test_bad_inputs_through_segment_and_features(workspace, tmp_path, bad_images):
    """Every accepted awkward image (16-bit, CMYK, 4000x3000, 8x8, flat ...) is segmented and featurised."""
    from stages import features, segment
    from storage.shards import ShardReader, npy_load

    root, ann = _custom(tmp_path, bad_images)
    workspace({"datasets": ["custom"], "prepare": {"custom": {"root": str(root), "annotations": str(ann)}}})
    accepted = prepare.run("custom")["images"]["accepted"]
    seg, feat = segment.run("custom"), features.run("custom")
    assert seg["accepted"] == feat["accepted"] == accepted and seg["rejected"] == feat["rejected"] == 0
    with ShardReader(tmp_path / "data/features/custom") as shards:
        assert npy_load(shards.get("flat")["nodes.npy"]).shape[0] == 1  # a single flat colour: one segment
        assert npy_load(shards.get("flat")["edges.npy"]).shape == (2, 0)
        assert npy_load(shards.get("8x8")["nodes.npy"]).shape[0] >= 1


def test_replacing_an_image_in_place_changes_prepare_and_segment(workspace, tmp_path):
    """images.parquet records each image's SHA-256, so the segment fingerprint (which hashes it) sees new bytes."""
    from stages import segment
    from storage.shards import ShardReader
    from tests.storage.official_layout import image

    root, ann = tmp_path / "imgs", tmp_path / "ann.jsonl"
    for name in ("a.png", "b.png"):
        image(root / name, seed=0, size=48)
    ann.write_text('{"image": "a.png", "id": "a"}\n{"image": "b.png", "id": "b"}\n')
    workspace({"datasets": ["custom"], "prepare": {"custom": {"root": str(root), "annotations": str(ann)}}})

    def run() -> tuple[dict[str, str], bytes]:
        prepare.run("custom")
        segment.run("custom")
        digests = {r["image_id"]: r["sha256"] for r in
                   pq.read_table(tmp_path / "data/prepared/custom/images.parquet").to_pylist()}
        with ShardReader(tmp_path / "data/masks/custom") as shards:
            return digests, shards.get("b")["seg.png"]

    before, seg_before = run()
    assert before["a"] == before["b"] and len(before["a"]) == 64   # same bytes, same digest
    image(root / "b.png", seed=7, size=48)                                   # replaced in place
    after, seg_after = run()
    assert after["a"] == before["a"] and after["b"] != before["b"]
    assert seg_after != seg_before                                           # not the old shard
