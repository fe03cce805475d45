"""segment and features stages on tiny scenes: outputs, every backend, rejects, determinism."""
import functools
import json
import logging
from pathlib import Path
from typing import get_args

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.ndimage
import torch
import torchvision
from PIL import Image

from models import pooling
from stages import features, prepare, segment
from stages.common import params
from stages.common.cli import StageError
from stages.common.params import ParamsError
from storage.images import RESIZE_MODES, load_rgb, load_square
from storage.maskcodec import (
    check_consistent,
    decode_png,
    decode_segments,
    encode_png,
    encode_segments,
    segments_from_ids,
)
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


@pytest.mark.parametrize("trunk, stride", [({"layer": "layer4"}, "layer4 stride 32"),
                                           ({"backbone": "vit_b_16"}, "vit_b_16 patch stride 16")])
def test_image_size_must_match_stride(workspace, trunk, stride):
    workspace({"segment": {"image_size": 72}, "features": trunk})
    prepare.run("scenes")
    segment.run("scenes")
    with pytest.raises(StageError, match=f"not a multiple of the {stride}"):
        features.run("scenes")


# ---- segment.resize on non-square images -----------------------------------------------
def _wide_custom(workspace, tmp_path, segment_params, features_params=None):
    """custom: three 96 x 48 images of 12-pixel colour blocks, prepared, with `segment_params`."""
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        blocks = np.random.default_rng(i).integers(0, 256, (4, 8, 3), dtype=np.uint8)
        Image.fromarray(blocks.repeat(12, 0).repeat(12, 1)).save(root / f"{i}.png")
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps({"image": f"{i}.png", "captions": ["blocks"]}) + "\n" for i in range(3)))
    workspace({"datasets": ["custom"], "prepare": {"custom": {"root": str(root), "annotations": str(ann)}},
               "segment": segment_params, "features": features_params or {}})
    prepare.run("custom")
    return root


def _pooled(path, resize, ids_png, segs_json, backbone="resnet18"):
    """Node features recomputed from the image squared by `resize` and the stored masks."""
    image = load_rgb(path, 64, resize)
    slots, records = features.node_layout(ids_png, segs_json, 12)
    net = features.build_backbone(backbone, "layer3", 64, None, 0, "cpu")
    cov = pooling.mask_coverage(slots, len(records), (4, 4))
    with torch.inference_mode():
        fmap = net(torch.tensor(image[None]))
        return pooling.pool(fmap.float(), torch.from_numpy(cov)[None])[0].numpy()


@pytest.mark.parametrize("resize", RESIZE_MODES)
def test_masks_and_features_share_the_transform(workspace, tmp_path, resize, one_thread):
    root = _wide_custom(workspace, tmp_path, {"resize": resize})
    segment.run("custom"), features.run("custom")
    assert json.loads((tmp_path / "data/masks/custom/meta.json").read_text())["resize"] == resize
    with ShardReader(tmp_path / "data/masks/custom") as mr, ShardReader(tmp_path / "data/features/custom") as fr:
        m, nodes = mr.get("0.png"), npy_load(fr.get("0.png")["nodes.npy"]).astype(np.float32)
    ids = decode_png(m["seg.png"])
    assert ids.shape == (64, 64) and ((ids == 0).any() == (resize == "pad"))   # only padding is void
    same = _pooled(root / "0.png", resize, m["seg.png"], m["segments.json"])
    other = _pooled(root / "0.png", "pad" if resize == "squash" else "squash", m["seg.png"], m["segments.json"])
    assert np.abs(nodes - same).max() < 0.01 * np.abs(same).max()
    assert np.abs(nodes - other).max() > 0.1 * np.abs(same).max()      # another transform would show


def test_vit_patch_tokens_are_pooled_per_segment(workspace, tmp_path, caplog, one_thread):
    """vit_b_16: one 768-d vector per kept segment, its patch tokens pooled as the ResNet map is; layer unused."""
    root = _wide_custom(workspace, tmp_path, {}, {"backbone": "vit_b_16"})
    with caplog.at_level(logging.INFO, logger="stages.features"):
        segment.run("custom"), features.run("custom")
    assert "features.layer (layer3) is not used: vit_b_16 pools its last encoder block's patch tokens" in caplog.text
    meta = json.loads((tmp_path / "data/features/custom/meta.json").read_text())
    assert (meta["backbone"], meta["layer"], meta["channels"], meta["random_init"]) == ("vit_b_16", None, 768, True)
    with ShardReader(tmp_path / "data/masks/custom") as mr, ShardReader(tmp_path / "data/features/custom") as fr:
        m, nodes = mr.get("0.png"), npy_load(fr.get("0.png")["nodes.npy"]).astype(np.float32)
    want = _pooled(root / "0.png", "squash", m["seg.png"], m["segments.json"], "vit_b_16")
    assert nodes.shape == want.shape == (min(len(decode_segments(m["segments.json"])), 12), 768)
    np.testing.assert_allclose(nodes, want, rtol=0, atol=2e-3 * np.abs(want).max())   # stored as fp16


@pytest.mark.parametrize("backend,extra", [("felzenszwalb", {}), ("grid", {"grid": {"rows": 2, "cols": 2}}),
                                           ("box", {"box": {"source": "slic"}})])
def test_padding_is_no_segment_and_no_node(workspace, tmp_path, backend, extra):
    _wide_custom(workspace, tmp_path, {"resize": "pad", "backend": backend, **extra})
    segment.run("custom"), features.run("custom")
    with ShardReader(tmp_path / "data/masks/custom") as mr, ShardReader(tmp_path / "data/features/custom") as fr:
        for image_id in mr.ids:
            ids, segs = decode_png(mr.get(image_id)["seg.png"]), decode_segments(mr.get(image_id)["segments.json"])
            geom = npy_load(fr.get(image_id)["geom.npy"])
            check_consistent(ids, segs)
            assert (ids[:16] == 0).all() and (ids[48:] == 0).all() and (ids[16:48] > 0).all()  # 96 x 48 -> rows 16-47
            assert all(s["bbox"][1] >= 16 and s["bbox"][3] <= 48 for s in segs)
            assert geom.shape[0] == min(len(segs), 12) and (geom[:, 1] >= 0.25).all() and (geom[:, 3] <= 0.75).all()
            if backend == "grid":
                assert len(segs) == 4 and {tuple(s["bbox"]) for s in segs} == {
                    (0, 16, 32, 32), (32, 16, 64, 32), (0, 32, 32, 48), (32, 32, 64, 48)}


def test_unknown_resize_is_a_params_error(workspace):
    workspace({"segment": {"resize": "stretch"}})
    prepare.run("scenes")
    with pytest.raises(ParamsError, match=r"segment\.resize: Input should be 'squash', 'pad' or 'crop'"):
        segment.run("scenes")
    assert get_args(params.SegmentParams.model_fields["resize"].annotation) == RESIZE_MODES


@pytest.mark.parametrize("resize", RESIZE_MODES)
def test_oracle_masks_are_squared_like_their_image(tmp_path, resize):
    """Ground truth of a 96 x 48 image (one segment per 12-pixel colour block) lands on its own block's pixels."""
    gt_ids = (np.arange(32, dtype=np.int32).reshape(4, 8) + 1).repeat(12, 0).repeat(12, 1)
    colours = np.random.default_rng(0).permutation(256)[:96].reshape(32, 3).astype(np.uint8)
    Image.fromarray(colours[gt_ids - 1]).save(tmp_path / "img.png")
    (tmp_path / "gt.png").write_bytes(encode_png(gt_ids))
    block_of = {b: str(b) for b in range(1, 33)}          # the category names the block (oracle renumbers ids)
    (tmp_path / "gt.json").write_bytes(encode_segments(segments_from_ids(gt_ids, categories=block_of)))
    cfg = params.SegmentParams(backend="oracle", image_size=64, resize=resize)
    square, content = load_square(tmp_path / "img.png", 64, resize)
    s = segment.segment_image(square, content, {"gt": str(tmp_path / "gt")}, cfg, "oracle")
    assert ((s.ids == 0).any() == (resize == "pad")) and (s.ids[:content[1]] == 0).all()
    assert s.n == (16 if resize == "crop" else 32)           # crop keeps the middle 4 of 8 block columns
    for sid, block in s.categories.items():
        inner = scipy.ndimage.binary_erosion(s.ids == sid)    # bilinear blends colours at block borders
        assert (square[inner] == colours[int(block) - 1]).all(), block


def test_work_size_on_a_padded_odd_shape():
    """A padded image's content need not be a multiple of the work-size factor: ids still cover all of it."""
    image = np.random.default_rng(0).integers(0, 256, (33, 64, 3), dtype=np.uint8)
    cfg = params.SegmentParams()
    run = functools.partial(segment._superpixels, cfg=cfg, backend="felzenszwalb")
    s = segment._at_work_size(image, 64, 32, run)
    assert s.ids.shape == (33, 64) and (s.ids > 0).all() and set(np.unique(s.ids)) == set(s.scores)
