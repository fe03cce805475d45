"""Stage `segment`: images -> panoptic segment masks, as WebDataset shards under data/masks/<dataset>/.

Per image: `seg.png` (16-bit segment-id map at segment.image_size) + `segments.json`
(storage.maskcodec). Also index.parquet (random access by image_id), meta.json (backend,
image size, resize mode, pooling shape for `features`), rejects.parquet and counts.json.
Images become squares by `segment.resize` (storage.images.to_square); with `pad`, only the
image's part of the square is segmented, and the padding stays void (id 0): it is no node.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from models import segmenters as seg
from stages.common import params, paths
from stages.common.cli import DATASET, StageError, progress_enabled, run_stage
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.weights import load_weights
from stages.jobs import sharded
from storage.atomic import write_json
from storage.images import Box, ImageError, load_square, to_square
from storage.maskcodec import decode_png, decode_segments, encode_png, encode_segments, segments_from_ids
from storage.shards import sample_key, write_shard
from storage.tables import read_table, table_path

log = logging.getLogger("stages.segment")
PATTERN = "masks-%06d.tar"


def _load_state(path: str | None, what: str) -> dict[str, torch.Tensor]:
    if not path:
        raise StageError(f"segment.backend=panoptic needs local {what} weights: set segment.panoptic."
                         f"{'maskrcnn' if 'Mask' in what else 'deeplab'}_weights to a torchvision state-dict "
                         f"file (.pth), e.g. maskrcnn_resnet50_fpn_coco / deeplabv3_resnet50_coco from the "
                         f"torchvision model zoo, copied to this machine. Nothing is downloaded at run time.")
    if not Path(path).is_file():
        raise StageError(f"{what} weights file not found: {path}")
    return load_weights(path, f"a copy of the {what} weights at segment.panoptic")


def _coco_things(num_classes: int) -> dict[int, str]:
    """torchvision's COCO category names (shipped metadata, no download) for 91-class Mask R-CNN weights."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
    names = MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    if num_classes != len(names):
        raise StageError(f"segment.panoptic.thing_names is empty and maskrcnn_num_classes={num_classes} is not "
                         f"COCO's {len(names)}: list the class names of your weights")
    return dict(enumerate(names))


@functools.lru_cache(maxsize=1)
def _panoptic(cfg_json: str, image_size: int) -> seg.PanopticSegmenter:
    p = params.PanopticParams.model_validate_json(cfg_json, strict=False)
    try:
        return seg.PanopticSegmenter(
            _load_state(p.maskrcnn_weights, "Mask R-CNN"), _load_state(p.deeplab_weights, "DeepLabV3"),
            num_thing_classes=p.maskrcnn_num_classes, num_semantic_classes=p.deeplab_num_classes,
            thing_names=p.thing_names or _coco_things(p.maskrcnn_num_classes), stuff_names=p.stuff_names,
            score_thresh=p.score_thresh, box_nms_thresh=p.nms_thresh, mask_thresh=p.mask_thresh,
            overlap_thresh=p.overlap_thresh, stuff_min_area=p.stuff_min_area,
            leftover_min_area=p.leftover_min_area, min_size=image_size, max_size=image_size,
            device="cuda" if torch.cuda.is_available() else "cpu")
    except ValueError as e:
        raise StageError(f"segment.panoptic: {e}") from None


def _oracle(item: dict[str, Any], cfg: params.SegmentParams, content: Box) -> seg.Segmentation:
    """Ground-truth ids squared as the image was (nearest); void outside the image's `content` box."""
    gt = Path(item["gt"]) if item.get("gt") else None
    if gt is None or not gt.with_suffix(".png").is_file():
        raise ImageError("no ground-truth mask for the oracle backend")
    gt_ids = Image.fromarray(decode_png(gt.with_suffix(".png").read_bytes()).astype(np.uint16))
    records = decode_segments(gt.with_suffix(".json").read_bytes())
    ids = np.asarray(to_square(gt_ids, cfg.image_size, cfg.resize, Image.NEAREST, 0)[0]).astype(np.int32)
    x1, y1, x2, y2 = content
    inside = np.zeros(ids.shape, bool)
    inside[y1:y2, x1:x2] = True
    ids[~inside] = 0
    return seg.oracle(ids, {r["id"]: r["category"] for r in records}, {r["id"]: r["isthing"] for r in records})


def _superpixels(image: np.ndarray, cfg: params.SegmentParams, backend: str) -> seg.Segmentation:
    if backend == "felzenszwalb":
        f = cfg.felzenszwalb
        return seg.felzenszwalb(image, scale=f.scale, sigma=f.sigma, min_size=f.min_size)
    return seg.slic(image, n_segments=cfg.slic.n_segments, compactness=cfg.slic.compactness)


def _at_work_size(image: np.ndarray, size: int, work_size: int | None,
                  run: Callable[[np.ndarray], seg.Segmentation]) -> seg.Segmentation:
    """Run a superpixel backend on a copy of the image reduced by work_size / size (the image may be a
    padded square's non-square content), then upsample its ids (nearest)."""
    h, w = image.shape[:2]
    if work_size is None or work_size >= size:
        return run(image)
    sh, sw = max(1, round(h * work_size / size)), max(1, round(w * work_size / size))
    small = np.asarray(Image.fromarray(image).resize((sw, sh), Image.BILINEAR, reducing_gap=2.0))
    s = run(small)
    f = size // work_size
    if size % work_size == 0 and (sh * f, sw * f) == (h, w):  # integer factor: every segment survives, area order kept
        return seg.Segmentation(s.ids.repeat(f, 0).repeat(f, 1), s.scores, s.categories, s.isthing)
    ids = np.asarray(Image.fromarray(s.ids.astype(np.uint16)).resize((w, h), Image.NEAREST)).astype(np.int32)
    return seg.oracle(ids, s.categories, s.isthing)  # renumbers: a tiny segment may have vanished


def _segment_content(image: np.ndarray, cfg: params.SegmentParams, backend: str) -> seg.Segmentation:
    """A pixel backend on the image's part of the square."""
    if backend in ("felzenszwalb", "slic"):
        run = functools.partial(_superpixels, cfg=cfg, backend=backend)
        return _at_work_size(image, cfg.image_size, cfg.work_size, run)
    if backend == "grid":
        return seg.grid(image.shape[0], image.shape[1], rows=cfg.grid.rows, cols=cfg.grid.cols)
    if backend == "panoptic":
        return _panoptic(cfg.panoptic.model_dump_json(), cfg.image_size)(image)
    raise StageError(f"unknown segment backend {backend!r}")


def segment_image(square: np.ndarray, content: Box, item: dict[str, Any], cfg: params.SegmentParams,
                  backend: str) -> seg.Segmentation:
    """Segments of a squared image (load_square); outside its `content` box (padding) ids stay 0 (void)."""
    if backend == "oracle":
        return _oracle(item, cfg, content)
    if backend == "box":
        return segment_image(square, content, item, cfg, cfg.box.source)
    x1, y1, x2, y2 = content
    s = _segment_content(square[y1:y2, x1:x2], cfg, backend)
    if s.ids.shape == square.shape[:2]:
        return s
    ids = np.zeros(square.shape[:2], np.int32)
    ids[y1:y2, x1:x2] = s.ids
    return seg.Segmentation(ids, s.scores, s.categories, s.isthing)


def segment_shard(job: sharded.ShardJob) -> sharded.ShardResult:
    """Worker: segment every image of one shard and write it."""
    cfg = params.SegmentParams.model_validate(job.config["segment"])
    torch.set_num_threads(1)  # felzenszwalb/slic are single-threaded; panoptic gets one core per worker
    samples, rejects, n_segments = [], [], 0
    for item in job.items:
        try:
            image, content = load_square(item["path"], cfg.image_size, cfg.resize)
            s = segment_image(image, content, item, cfg, cfg.backend)
        except ImageError as e:
            rejects.append({"source": job.config["source"], "item": f"images:{item['image_id']}", "reason": str(e)})
            continue
        records = segments_from_ids(s.ids, s.scores, s.categories, s.isthing)
        n_segments += len(records)
        samples.append((item["image_id"], sample_key(item["position"]),
                        {"seg.png": encode_png(s.ids), "segments.json": encode_segments(records)}))
    rows = write_shard(job.path, samples)
    return sharded.ShardResult(rows, rejects, {"images": len(samples), "segments": n_segments})


def run(dataset: str) -> dict[str, Any]:
    cfg: params.SegmentParams = params.load("segment")
    src = paths.prepared(dataset)
    images = read_table(table_path(src, "images"), "images").to_pylist()
    if not images:
        raise StageError(f"{table_path(src, 'images')} has no images")
    gt_dir = paths.ground_truth(dataset)
    items = [{"image_id": r["image_id"], "position": i, "path": str(src / r["path"]),
              "gt": str(gt_dir / r["image_id"]) if gt_dir.is_dir() else None} for i, r in enumerate(images)]
    if cfg.backend in ("oracle", "box") and (cfg.backend == "oracle" or cfg.box.source == "oracle") \
            and not gt_dir.is_dir():
        raise StageError(f"backend oracle needs ground-truth masks, which {dataset} does not have ({gt_dir})")
    if "panoptic" in (cfg.backend, cfg.box.source if cfg.backend == "box" else None):
        _panoptic(cfg.panoptic.model_dump_json(), cfg.image_size)  # fail now, before any work, if weights are missing
    out = paths.masks(dataset)
    source = f"segment:{dataset}"
    fp = digest(cfg.model_dump(exclude=sharded.EXECUTOR_KEYS),
                             file_digest(table_path(src, "images")),
                             code_digest("stages.segment"))
    config = {"segment": cfg.model_dump(), "source": source}
    jobs = sharded.plan(items, out, PATTERN, cfg.shard_size, config)
    log.info("%s: segmenting %d images with %s at %dx%d (%s) into %d shards", dataset, len(items), cfg.backend,
             cfg.image_size, cfg.image_size, cfg.resize, len(jobs))
    rejects, stats = sharded.run(jobs, segment_shard, out, fp, executor=cfg, source=source,
                                 desc=f"segment {dataset}", progress=progress_enabled())
    pooling = "box" if cfg.backend == "box" else "mask"
    write_json(paths.masks_meta(dataset), {"backend": cfg.backend, "image_size": cfg.image_size,
                                           "resize": cfg.resize, "pooling": pooling})
    counts = sharded.write_counts(out, len(items), rejects, stats)
    log.info("%s: read %d, wrote %d (%.1f segments/image), rejected %d (%s)", dataset, counts["given"],
             counts["accepted"], counts.get("segments", 0) / max(counts["accepted"], 1), counts["rejected"],
             rejects.summary())
    return counts


def main(argv: list[str] | None = None) -> None:
    run_stage("segment", __doc__, run, argv, DATASET)


if __name__ == "__main__":
    main()
