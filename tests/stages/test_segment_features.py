"""segment and features stages on tiny scenes: outputs, every backend, rejects, determinism."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torchvision

from stages import features, prepare, segment
from stages.common.cli import StageError
from storage.maskcodec import check_consistent, decode_png, decode_segments
from storage.shards import ShardReader, npy_load


def _run_all(overrides=None, workspace=None):
    if workspace is not None:
        workspace(overrides or {})
    prepare.run("scenes")
    return segment.run("scenes"), features.run("scenes")


def _tars(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


def test_pipeline_outputs(workspace, tmp_path):
    seg_counts, feat_counts = _run_all(workspace=workspace)
    assert seg_counts["given"] == seg_counts["accepted"] == 36 and seg_counts["rejected"] == 0
    assert feat_counts["accepted"] == 36
    masks, feats = tmp_path / "data/masks/scenes", tmp_path / "data/features/scenes"
    assert len(list(masks.glob("masks-*.tar"))) == 5  # 36 images / shard_size 8
    meta = json.loads((feats / "meta.json").read_text())
    assert meta["channels"] == 256 and meta["random_init"] is True
    with ShardReader(masks) as mr, ShardReader(feats) as fr:
        assert len(fr) == 36
        image_id = fr.ids[17]
        m = mr.get(image_id)
        ids, segs = decode_png(m["seg.png"]), decode_segments(m["segments.json"])
        assert ids.shape == (64, 64)
        check_consistent(ids, segs)
        s = fr.get(image_id)
        nodes, geom, edges = npy_load(s["nodes.npy"]), npy_load(s["geom.npy"]), npy_load(s["edges.npy"])
        k = min(len(segs), 12)
        assert nodes.shape == (k, 256) and nodes.dtype == np.float16 and np.isfinite(nodes).all()
        assert (np.abs(nodes).sum(1) > 0).all()  # never an empty node
        assert geom.shape == (k, 7) and (geom[:, 4][:-1] >= geom[:, 4][1:]).all()  # largest first
        assert edges.shape[0] == 2 and edges.max() < k and edges.dtype == np.int32


def test_workers_do_not_change_bytes(workspace, tmp_path):
    _run_all({"segment": {"workers": 1}, "features": {"workers": 1}}, workspace)
    one = _tars(tmp_path / "data/masks/scenes") | _tars(tmp_path / "data/features/scenes")
    workspace({"segment": {"workers": 2, "shard_size": 8}, "features": {"workers": 2}})
    segment.run("scenes"), features.run("scenes")
    two = _tars(tmp_path / "data/masks/scenes") | _tars(tmp_path / "data/features/scenes")
    assert one == two


@pytest.mark.parametrize("backend,extra", [
    ("slic", {}), ("grid", {"grid": {"rows": 4, "cols": 3}}), ("oracle", {}), ("box", {"box": {"source": "oracle"}}),
])
def test_backends(workspace, tmp_path, backend, extra):
    _run_all({"segment": {"backend": backend, **extra}, "features": {"edges": {"mode": "full"}}}, workspace)
    with ShardReader(tmp_path / "data/masks/scenes") as mr, ShardReader(tmp_path / "data/features/scenes") as fr:
        segs = decode_segments(mr.get(mr.ids[0])["segments.json"])
        nodes = npy_load(fr.get(fr.ids[0])["nodes.npy"])
        edges = npy_load(fr.get(fr.ids[0])["edges.npy"])
    k = min(len(segs), 12)
    assert nodes.shape[0] == k and edges.shape[1] == k * (k - 1)
    if backend == "grid":
        assert len(segs) == 12
    if backend in ("oracle", "box"):
        assert any(s["isthing"] for s in segs) and all(s["category"] for s in segs)
    pooling = json.loads((tmp_path / "data/masks/scenes/meta.json").read_text())["pooling"]
    assert pooling == ("box" if backend == "box" else "mask")


def test_panoptic_without_weights_refuses(workspace):
    workspace({"segment": {"backend": "panoptic"}})
    prepare.run("scenes")
    with pytest.raises(StageError, match="needs local Mask R-CNN weights"):
        segment.run("scenes")


def test_panoptic_with_local_weights_runs(workspace, tmp_path):
    """The real Mask R-CNN + DeepLabV3 path, with random weights saved as local files."""
    torch.manual_seed(0)
    det = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    sem = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=4)
    torch.save(det.state_dict(), tmp_path / "mrcnn.pth")
    torch.save(sem.state_dict(), tmp_path / "deeplab.pth")
    workspace({"prepare": {"scenes": {"splits": {"train": 3, "val": 1, "test": 1}}},
               "segment": {"backend": "panoptic", "panoptic": {
                   "maskrcnn_weights": str(tmp_path / "mrcnn.pth"), "deeplab_weights": str(tmp_path / "deeplab.pth"),
                   "maskrcnn_num_classes": 3, "deeplab_num_classes": 4, "thing_names": {1: "circle", 2: "square"},
                   "stuff_names": {0: "background", 3: "sky"}, "stuff_min_area": 4, "leftover_min_area": 4}}})
    prepare.run("scenes")
    counts = segment.run("scenes")
    assert counts["accepted"] == 5 and counts["segments"] >= 5
    workspace({"segment": {"backend": "panoptic", "panoptic": {
        "maskrcnn_weights": str(tmp_path / "deeplab.pth"), "deeplab_weights": str(tmp_path / "deeplab.pth"),
        "maskrcnn_num_classes": 3, "deeplab_num_classes": 4, "thing_names": {1: "a", 2: "b"}}}})
    with pytest.raises(StageError, match="Mask R-CNN weights"):
        segment.run("scenes")


def test_vanished_and_corrupt_images_become_rejects(workspace, tmp_path):
    workspace()
    prepare.run("scenes")
    images = pq.read_table(tmp_path / "data/prepared/scenes/images.parquet").to_pylist()
    root = tmp_path / "data/prepared/scenes"
    (root / images[3]["path"]).unlink()
    (root / images[5]["path"]).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    counts = segment.run("scenes")
    assert (counts["accepted"], counts["rejected"]) == (34, 2)
    rejects = pq.read_table(tmp_path / "data/masks/scenes/rejects.parquet").to_pylist()
    reasons = {r["item"]: r["reason"] for r in rejects}
    assert reasons[f"images:{images[3]['image_id']}"].startswith("missing file")
    assert reasons[f"images:{images[5]['image_id']}"].startswith("undecodable")
    fc = features.run("scenes")
    assert fc["given"] == 34 and fc["not_segmented"] == 2 and fc["accepted"] == 34


def test_features_needs_segment_first(workspace):
    workspace()
    prepare.run("scenes")
    with pytest.raises(StageError, match="run `dvc repro segment@scenes` first"):
        features.run("scenes")


def test_missing_backbone_weights_file(workspace):
    _run_all(workspace=workspace)
    workspace({"features": {"weights": "nowhere/resnet18.pth"}})
    features.build_backbone.cache_clear()
    with pytest.raises(StageError, match="features.weights file not found: nowhere/resnet18.pth"):
        features.run("scenes")


def test_image_size_must_match_stride(workspace):
    workspace({"segment": {"image_size": 72}, "features": {"layer": "layer4"}})
    prepare.run("scenes")
    segment.run("scenes")
    with pytest.raises(StageError, match="not a multiple of the layer4 stride 32"):
        features.run("scenes")
