"""Stage `backbone`: supervised pre-training of the `features` trunk, the local stand-in for ImageNet weights.

Trains torchvision `features.backbone` up to `features.layer` (from `backbone.train_from` on; earlier
layers keep their seeded weights) on the ground-truth segments of `backbone.dataset` (the embedded
`scenes`: data/prepared/scenes/gt/<image_id>.png + .json): the feature map is soft-mask pooled over
every segment as `features` pools it, and linear heads classify its category (shape or stuff) and,
for things, its colour. Augmentations (flip, zoom, stretch, colour jitter, flat backgrounds, blur)
move the scenes towards other domains.
ResNets only: for `vit_b_16` the stage stops and asks for a local `features.weights` file.

Outputs under data/backbone/: <arch>.pt (the torchvision state dict, batch norm unfolded: what
`features.weights` loads), metrics.json (held-out attribute accuracy on the val split), and
train/ (stages.training.trainer: model.pt with the heads, checkpoint/, metrics.json, plots/losses.tsv);
metrics/backbone.json: its held-out accuracies, git-tracked for `dvc exp show`; plots/backbone.tsv: the
training log, git-tracked for `dvc plots diff`.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.attribute_head import IGNORE, AttributeBatch, AttributeNet
from models.backbone import RESNETS, STRIDE, BackboneError
from stages.common import params, paths
from stages.common.cli import StageError, progress_enabled, run_stage
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.headline import write_headline
from stages.common.weights import CheckpointError
from stages.training import trainer
from stages.training.metrics_log import shifted_log
from storage.adapters.scene_render import COLORS, SHAPES, STUFF
from storage.atomic import atomic_path, write_bytes, write_json
from storage.images import ImageError, load_rgb
from storage.maskcodec import MaskCodecError, decode_png, decode_segments
from storage.tables import read_table, table_path

log = logging.getLogger("stages.backbone")
CLASSES = {"category": (*SHAPES, *STUFF), "color": tuple(COLORS)}
MIN_VISIBLE = 0.5   # a thing cut by the crop below this share of its (zoomed) area keeps only its colour target
MIN_PIXELS = 8      # segments with fewer pixels after augmentation get no target


class Segments:
    """Images, segment-id maps and per-segment targets of one split, in memory."""

    def __init__(self, images: np.ndarray, ids: np.ndarray, targets: dict[str, np.ndarray],
                 large: np.ndarray) -> None:
        self.images = images      # N x H x W x 3 uint8
        self.ids = ids            # N x H x W int16, 0 = void
        self.targets = targets    # attribute -> N x (max id + 1) class index, IGNORE where none
        self.large = large        # N x (max id + 1) bool: things of size "large" (for a separate metric)

    def __len__(self) -> int:
        return len(self.images)


def load_split(dataset: str, rows: list[dict[str, Any]]) -> Segments:
    """Read the images and ground truth of `rows` (images table rows) of the prepared `dataset`."""
    root = paths.prepared(dataset)
    images, ids, records = [], [], []
    for r in rows:
        gt = paths.ground_truth(dataset) / r["image_id"]
        try:
            images.append(load_rgb(root / r["path"]))
            ids.append(decode_png(gt.with_suffix(".png").read_bytes()))
            records.append(decode_segments(gt.with_suffix(".json").read_bytes()))
        except (OSError, ImageError, MaskCodecError) as e:
            raise StageError(f"backbone: cannot read {r['image_id']} under {root}: {e}") from None
        if ids[-1].shape != images[-1].shape[:2]:
            raise StageError(f"backbone: {gt}.png is {ids[-1].shape}, its image {images[-1].shape[:2]}")
    width = max(int(i.max()) for i in ids) + 1
    targets = {name: np.full((len(rows), width), IGNORE, np.int64) for name in CLASSES}
    large = np.zeros((len(rows), width), bool)
    for n, recs in enumerate(records):
        for rec in recs:
            cat = rec.get("category")
            if cat not in CLASSES["category"]:
                raise StageError(f"backbone: {rows[n]['image_id']}: segment {rec.get('id')} has category {cat!r}, "
                                 f"expected one of {CLASSES['category']}")
            targets["category"][n, rec["id"]] = CLASSES["category"].index(cat)
            if rec.get("isthing"):
                if rec.get("color") not in CLASSES["color"]:
                    raise StageError(f"backbone: {rows[n]['image_id']}: thing {rec['id']} has colour "
                                     f"{rec.get('color')!r}; regenerate the dataset (`dvc repro prepare@scenes`)")
                targets["color"][n, rec["id"]] = CLASSES["color"].index(rec["color"])
                large[n, rec["id"]] = rec.get("size") == "large"
    return Segments(np.stack(images), np.stack(ids).astype(np.int16), targets, large)


def counts(ids: torch.Tensor, width: int) -> torch.Tensor:
    """Segment-id maps B x H x W (ids < width) -> B x width pixel counts."""
    offset = torch.arange(len(ids)).view(-1, 1, 1) * width
    return torch.bincount((ids + offset).flatten(), minlength=len(ids) * width).view(len(ids), width).float()


def coverage(ids: torch.Tensor, stride: int) -> torch.Tensor:
    """Segment-id maps B x H x W (ids 0..S) -> B x S x (H/stride * W/stride) pixel counts per cell."""
    b, h, w = ids.shape
    cell = (torch.arange(h) // stride).view(-1, 1) * (w // stride) + torch.arange(w) // stride
    return counts(ids.long() * cell.max().add(1) + cell, (int(ids.max()) + 1) * int(cell.max() + 1)) \
        .view(b, -1, int(cell.max() + 1))[:, 1:]


class Collator:
    """spec (image indices) -> AttributeBatch, augmented when `augment` is given (RNG: torch's global,
    which the trainer seeds per step)."""

    def __init__(self, data: Segments, stride: int, augment: params.AugmentParams | None) -> None:
        self.data, self.stride, self.aug = data, stride, augment
        self.is_stuff = torch.from_numpy(data.targets["color"] == IGNORE)   # N x (max id + 1); void counts as stuff

    def __call__(self, spec: list[int]) -> AttributeBatch:
        idx = torch.as_tensor(spec)
        images = torch.from_numpy(self.data.images[spec]).permute(0, 3, 1, 2).float()
        ids = torch.from_numpy(self.data.ids[spec]).long()
        targets = {k: torch.from_numpy(v[spec]) for k, v in self.data.targets.items()}
        if self.aug is not None:
            area = counts(ids, targets["category"].shape[1])   # B x (max id + 1)
            images, ids, scale = self._warp(images, ids)
            images, flat = self._appearance(images, self.is_stuff[idx].gather(1, ids.flatten(1)).view_as(ids))
            targets["category"] = torch.where(flat[:, None] & self.is_stuff[idx], IGNORE, targets["category"])
            seen = counts(ids, area.shape[1])
            cut = seen < MIN_VISIBLE * area * scale[:, None]
            targets["category"] = torch.where(cut & ~self.is_stuff[idx], IGNORE, targets["category"])
            targets = {k: torch.where(seen < MIN_PIXELS, IGNORE, v) for k, v in targets.items()}
        cov = coverage(ids, self.stride)
        return AttributeBatch(images, cov, {k: v[:, 1: cov.shape[1] + 1] for k, v in targets.items()})

    def _warp(self, images: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random zoom-in, stretch, flip and crop position; returns the area scale of each image."""
        b, a = len(images), self.aug
        zoom = torch.exp(torch.rand(b) * math.log(a.zoom))
        stretch = torch.exp((torch.rand(b) * 2 - 1) * math.log(a.aspect)).sqrt()
        sx, sy = (1 / (zoom * stretch)).clamp(max=1.0), (stretch / zoom).clamp(max=1.0)
        tx, ty = (torch.rand(b) * 2 - 1) * (1 - sx), (torch.rand(b) * 2 - 1) * (1 - sy)
        flip = torch.where(torch.rand(b) < 0.5, -1.0, 1.0) if a.flip else torch.ones(b)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, tx, sy, ty
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        ids = F.grid_sample(ids[:, None].float(), grid, mode="nearest", padding_mode="border",
                            align_corners=False)[:, 0].round().long()
        return images, ids, 1 / (sx * sy)

    def _appearance(self, images: torch.Tensor, stuff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat light backgrounds, colour jitter and blur; returns which images lost their stuff."""
        b, a = len(images), self.aug
        flat = torch.rand(b) < a.flat_stuff
        colour = 190 + 65 * torch.rand(b, 3, 1, 1)
        images = torch.where(flat[:, None, None, None] & stuff[:, None], colour, images)
        j = a.jitter
        gray = images.mean(1, keepdim=True)
        images = gray + (images - gray) * (1 + j * (2 * torch.rand(b, 1, 1, 1) - 1))              # saturation
        mean = images.mean((1, 2, 3), keepdim=True)
        images = mean + (images - mean) * (1 + j * (2 * torch.rand(b, 1, 1, 1) - 1))               # contrast
        images = images * (1 + j * (2 * torch.rand(b, 1, 1, 1) - 1))                               # brightness
        blur = torch.rand(b) < a.blur
        if blur.any():
            small = F.interpolate(images[blur], scale_factor=0.5, mode="area")
            images[blur] = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return images.clamp(0, 255), flat


@torch.inference_mode()
def evaluate(model: AttributeNet, data: Segments, stride: int, batch_size: int) -> dict[str, Any]:
    """Held-out accuracy per attribute over every ground-truth segment (no augmentation, eval mode)."""
    model.eval()
    collate = Collator(data, stride, None)
    hits: dict[str, list[int]] = {k: [0, 0] for k in ("category", "shape", "shape_large", "stuff", "color")}
    n_shapes = len(SHAPES)
    for start in range(0, len(data), batch_size):
        spec = list(range(start, min(start + batch_size, len(data))))
        batch = collate(spec)
        pred = model.predict(batch)
        for name in CLASSES:
            t, p = batch.targets[name], pred[name]
            groups = {name: t != IGNORE}
            if name == "category":
                shape = (t != IGNORE) & (t < n_shapes)
                large = torch.from_numpy(data.large[spec, 1: t.shape[1] + 1])
                groups |= {"shape": shape, "shape_large": shape & large, "stuff": t >= n_shapes}
            for g, keep in groups.items():
                hits[g][0] += int((p[keep] == t[keep]).sum())
                hits[g][1] += int(keep.sum())
    out: dict[str, Any] = {f"val_{k}_acc": c / n if n else None for k, (c, n) in hits.items()}
    return out | {f"val_{k}_segments": n for k, (_, n) in hits.items()} | {"val_images": len(data)}


def refuse_non_resnet(arch: str) -> None:
    """This stage trains ResNets only: for another trunk, say which weights file to supply instead."""
    if arch not in RESNETS:
        raise StageError(f"backbone: features.backbone={arch} cannot be pre-trained by this stage (ResNets only): "
                         f"set features.weights to a local {arch} state dict with torchvision's keys (e.g. ImageNet "
                         f"weights saved on a machine with internet), outside data/backbone/, and build only what "
                         f"you need (e.g. `dvc repro features@scenes`): a bare `dvc repro` also runs this stage")


def run() -> dict[str, Any]:
    cfg: params.BackboneParams = params.load("backbone")
    fcfg: params.FeaturesParams = params.load("features")
    refuse_non_resnet(fcfg.backbone)
    arch, layer, stride = fcfg.backbone, fcfg.layer, STRIDE[fcfg.layer]
    root = paths.prepared(cfg.dataset)
    if not paths.ground_truth(cfg.dataset).is_dir():
        raise StageError(f"backbone.dataset={cfg.dataset} has no ground-truth segments "
                         f"({paths.ground_truth(cfg.dataset)} not found): "
                         f"the backbone trains on `scenes` (run `dvc repro prepare@scenes` first)")
    rows = read_table(table_path(root, "images"), "images").to_pylist()
    train_rows = [r for r in rows if r["split"] == "train"][: cfg.max_images]
    val_rows = [r for r in rows if r["split"] == "val"]
    if not train_rows or not val_rows:
        raise StageError(f"backbone: {root} needs train and val images, has {len(train_rows)} and {len(val_rows)}")
    train, val = load_split(cfg.dataset, train_rows), load_split(cfg.dataset, val_rows)
    if train.images.shape[1] % stride or train.images.shape[2] % stride:
        raise StageError(f"backbone: {cfg.dataset} images are {train.images.shape[2]}x{train.images.shape[1]}, "
                         f"not a multiple of the {layer} stride {stride}")
    torch.manual_seed(cfg.seed)
    model = AttributeNet(arch, layer, {k: len(v) for k, v in CLASSES.items()})
    try:
        trained, fixed = model.parameter_groups(cfg.train_from)
    except BackboneError as e:
        raise StageError(f"backbone.train_from: {e}") from None
    groups = [trainer.OptimGroup("trained", trained, "adamw", cfg.lr, cfg.weight_decay),
              trainer.OptimGroup("fixed", fixed, frozen=True)]
    tcfg = trainer.TrainConfig(epochs=cfg.epochs, warmup_ratio=cfg.warmup_ratio, seed=cfg.seed, device=cfg.device)
    inputs = [root / r["path"] for r in train_rows + val_rows] + \
        [paths.ground_truth(cfg.dataset) / f"{r['image_id']}.{ext}" for r in train_rows + val_rows
         for ext in ("png", "json")]
    fp = digest(cfg.model_dump(), arch, layer, code_digest("stages.backbone"), [file_digest(p) for p in inputs])

    def plan(epoch: int) -> list[list[int]]:
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train)).tolist()
        return [order[i: i + cfg.batch_size] for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size)] \
            or [order]

    log.info("backbone: training %s up to %s on %d %s images (%d epochs)", arch, layer, len(train), cfg.dataset,
             cfg.epochs)
    report: dict[str, Any] = {"arch": arch, "layer": layer, "dataset": cfg.dataset, "train_images": len(train)}
    report |= trainer.fit(model, groups, plan, Collator(train, stride, cfg.augment), tcfg, paths.backbone_train_dir(),
                          progress=progress_enabled(), fingerprint=fp)
    model.cpu()
    report |= evaluate(model, val, stride, cfg.batch_size)
    with atomic_path(paths.backbone_weights(arch)) as tmp:
        torch.save({k: v.detach().cpu().contiguous() for k, v in model.resnet.state_dict().items()}, tmp)
    write_json(paths.backbone_metrics(), report)
    write_headline(paths.headline("backbone"), {k: v for k, v in report.items()
                                                if k == "loss" or k.endswith("_acc") and v is not None})
    write_bytes(paths.plot_log("backbone"), shifted_log(paths.backbone_train_dir() / trainer.LOSSES).encode())
    log.info("backbone: wrote %s; held-out accuracy: %s", paths.backbone_weights(arch),
             ", ".join(f"{k} {v:.3f}" for k, v in report.items() if k.endswith("_acc") and v is not None) or "n/a")
    return report


def main(argv: list[str] | None = None) -> None:
    run_stage("backbone", __doc__, run, argv, errors=(trainer.TrainError, CheckpointError, BackboneError))


if __name__ == "__main__":
    main()
