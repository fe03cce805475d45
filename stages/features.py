"""Stage `features`: images + masks -> mask-pooled ResNet or ViT node features, shards under data/features/<dataset>/.

Per image: `nodes.npy` (k x C fp16, k <= features.max_nodes, slots ordered by area, largest
first), `geom.npy` (k x 7 fp32: x1, y1, x2, y2, area, fill, score) and `edges.npy`
(2 x E int32). Plus index.parquet, meta.json (channels, backbone, K), rejects, counts.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import graph, pooling
from models.backbone import VIT, BackboneError, ResNetTrunk, ViTTrunk, build_trunk, stride_of
from stages.common import params, paths
from stages.common.cli import DATASET, StageError, progress_enabled, run_stage
from stages.common.device import resolve_device
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.weights import load_weights
from stages.jobs import sharded
from storage.atomic import write_json
from storage.images import ImageError, load_rgb
from storage.maskcodec import MaskCodecError, decode_png, decode_segments
from storage.shards import INDEX_NAME, ShardReader, npy_bytes, sample_key, write_shard
from storage.tables import read_table, table_path

log = logging.getLogger("stages.features")
PATTERN = "nodes-%06d.tar"


@functools.lru_cache(maxsize=1)
def build_backbone(name: str, layer: str, image_size: int, weights: str | None, seed: int,
                   device: str) -> ResNetTrunk | ViTTrunk:
    """The frozen trunk for `image_size` x `image_size` images: local weights when given, else a seeded random
    init (logged)."""
    state = None
    if weights:
        if not Path(weights).is_file():
            raise StageError(f"features.weights file not found: {weights} (a torchvision {name} state dict, "
                             f"e.g. ImageNet weights copied to this machine)")
        state = load_weights(weights, "dvc repro backbone")
    torch.manual_seed(seed)
    try:
        net = build_trunk(name, layer, image_size, state)
    except BackboneError as e:
        raise StageError(str(e)) from None
    return net.for_inference().to(device)


def pooled_layer(cfg: params.FeaturesParams, image_size: int) -> str | None:
    """The ResNet stage whose map is pooled, or None for the ViT (its patch tokens: `layer` is not used);
    refuses an image size that the trunk's stride does not divide."""
    vit, stride = cfg.backbone == VIT, stride_of(cfg.backbone, cfg.layer)
    if image_size % stride:
        grid = f"{VIT} patch" if vit else cfg.layer
        raise StageError(f"segment.image_size={image_size} is not a multiple of the {grid} stride {stride}: "
                         f"feature cells would not line up with mask pixels")
    if vit:
        log.info("features.layer (%s) is not used: %s pools its last encoder block's patch tokens (stride %d)",
                 cfg.layer, VIT, stride)
    return None if vit else cfg.layer


def node_layout(seg_png: bytes, seg_json: bytes, max_nodes: int) -> tuple[np.ndarray, list[dict]]:
    """Slot map (0 = unused, 1..k by decreasing area) and the kept segment records in slot order."""
    ids = decode_png(seg_png)
    records = sorted(decode_segments(seg_json), key=lambda r: (-r["area"], r["id"]))[:max_nodes]
    lut = np.zeros(int(ids.max()) + 1 if ids.size else 1, np.int32)
    for slot, r in enumerate(records, 1):
        if r["id"] < len(lut):
            lut[r["id"]] = slot
    return lut[ids], records


def _prepare(item: dict[str, Any], masks: ShardReader, size: int, resize: str, cfg: params.FeaturesParams,
             box_pool: bool, feat_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """CPU side of one image: pixels (squared as `segment` squared them), coverage, geometry and edges."""
    image = load_rgb(item["path"], size, resize)
    sample = masks.get(item["image_id"])
    slots, records = node_layout(sample["seg.png"], sample["segments.json"], cfg.max_nodes)
    if slots.shape != (size, size):
        raise MaskCodecError(f"mask is {slots.shape[1]}x{slots.shape[0]}, expected {size}x{size}")
    k = len(records)
    if k == 0:
        raise MaskCodecError("image has no segments")
    bboxes = np.array([r["bbox"] for r in records], np.float32)
    cov = pooling.box_coverage(bboxes, (size, size), feat_hw) if box_pool else pooling.mask_coverage(slots, k, feat_hw)
    geom = graph.geometry(bboxes, np.array([r["area"] for r in records], np.float32),
                          np.array([r["score"] for r in records], np.float32), (size, size))
    edges = graph.edges(slots, k, cfg.edges.mode, cfg.edges.knn)
    return image, cov, {"geom.npy": geom, "edges.npy": edges}


def features_shard(job: sharded.ShardJob) -> sharded.ShardResult:
    """Worker: pool backbone features over every image's segments in one shard."""
    cfg = params.FeaturesParams.model_validate(job.config["features"])
    torch.set_num_threads(cfg.threads)
    meta = job.config["masks_meta"]
    size, box_pool = meta["image_size"], meta["pooling"] == "box"
    resize = meta.get("resize", "squash")  # masks written before segment.resize existed were squashed
    device = resolve_device(cfg.device, "features.device")
    net = build_backbone(cfg.backbone, cfg.layer, size, cfg.weights, cfg.seed, device.type)
    feat_hw = (-(-size // net.stride),) * 2
    samples, rejects, nodes_total = [], [], 0
    with ShardReader(job.config["masks_dir"]) as masks:
        for start in range(0, len(job.items), cfg.batch_size):
            batch, pixels, covs, extras = [], [], [], []
            for item in job.items[start: start + cfg.batch_size]:
                try:
                    image, cov, extra = _prepare(item, masks, size, resize, cfg, box_pool, feat_hw)
                except (ImageError, MaskCodecError) as e:
                    rejects.append({"source": job.config["source"], "item": f"images:{item['image_id']}",
                                    "reason": str(e)})
                    continue
                batch.append(item), pixels.append(image), covs.append(cov), extras.append(extra)
            if not batch:
                continue
            with torch.inference_mode():
                fmap = net(torch.from_numpy(np.stack(pixels)).to(device))
                if fmap.shape[-2:] != feat_hw:
                    raise AssertionError(f"feature map {tuple(fmap.shape[-2:])} != expected {feat_hw}")
                kmax = max(c.shape[0] for c in covs)
                cov = torch.zeros(len(batch), kmax, feat_hw[0] * feat_hw[1])
                for i, c in enumerate(covs):
                    cov[i, : len(c)] = torch.from_numpy(c)
                nodes = pooling.pool(fmap.float(), cov.to(device)).half().cpu().numpy()
            for i, item in enumerate(batch):
                k = covs[i].shape[0]
                nodes_total += k
                sample = {"nodes.npy": npy_bytes(nodes[i, :k])} | {n: npy_bytes(a) for n, a in extras[i].items()}
                samples.append((item["image_id"], sample_key(item["position"]), sample))
    rows = write_shard(job.path, samples)
    return sharded.ShardResult(rows, rejects, {"images": len(samples), "nodes": nodes_total})


def run(dataset: str) -> dict[str, Any]:
    cfg: params.FeaturesParams = params.load("features")
    src, masks_dir = paths.prepared(dataset), paths.masks(dataset)
    images = read_table(table_path(src, "images"), "images").to_pylist()
    meta_path = paths.masks_meta(dataset)
    if not meta_path.is_file():
        raise StageError(f"{meta_path} not found: run `dvc repro segment@{dataset}` first")
    meta = json.loads(meta_path.read_text())
    with ShardReader(masks_dir) as masks:
        have = set(masks.ids)
    items = [{"image_id": r["image_id"], "position": i, "path": str(src / r["path"])}
             for i, r in enumerate(images) if r["image_id"] in have]
    skipped = len(images) - len(items)  # images the segment stage rejected (listed in its rejects)
    layer = pooled_layer(cfg, meta["image_size"])
    device = resolve_device(cfg.device, "features.device")
    net = build_backbone(cfg.backbone, cfg.layer, meta["image_size"], cfg.weights, cfg.seed, device.type)
    if cfg.weights is None:
        log.warning("features.weights is not set: %s uses a seeded RANDOM init (seed %d), not ImageNet weights",
                    cfg.backbone, cfg.seed)
    out, source = paths.features(dataset), f"features:{dataset}"
    config = {"features": cfg.model_dump(), "masks_meta": meta, "masks_dir": str(masks_dir), "source": source}
    fp = digest(cfg.model_dump(exclude=sharded.EXECUTOR_KEYS), meta,
                             file_digest(masks_dir / INDEX_NAME),
                             code_digest("stages.features"))
    jobs = sharded.plan(items, out, PATTERN, cfg.shard_size, config)
    log.info("%s: %s/%s (%d channels) on %s over %d images in %d shards", dataset, cfg.backbone,
             layer or "patch tokens", net.channels, device, len(items), len(jobs))
    executor = None if device.type == "cuda" else cfg  # one GPU: shards run in this process
    rejects, stats = sharded.run(jobs, features_shard, out, fp, executor=executor, source=source,
                                 desc=f"features {dataset}", progress=progress_enabled())
    write_json(paths.features_meta(dataset), {"backbone": cfg.backbone, "layer": layer, "channels": net.channels,
                                   "max_nodes": cfg.max_nodes, "geom_fields": list(graph.GEOM_FIELDS),
                                   "random_init": cfg.weights is None, "image_size": meta["image_size"]})
    counts = sharded.write_counts(out, len(items), rejects, stats, not_segmented=skipped)
    log.info("%s: read %d, wrote %d (%.1f nodes/image), rejected %d (%s); %d images not segmented upstream",
             dataset, counts["given"], counts["accepted"], counts.get("nodes", 0) / max(counts["accepted"], 1),
             counts["rejected"], rejects.summary(), skipped)
    return counts


def main(argv: list[str] | None = None) -> None:
    run_stage("features", __doc__, run, argv, DATASET, errors=(BackboneError,))


if __name__ == "__main__":
    main()
