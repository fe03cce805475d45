"""Image segmenters: every backend turns an RGB image into one `Segmentation`.

Segment ids are 1..n, numbered by decreasing area (ties: first pixel in raster order);
0 is void. A non-empty image always gets at least one segment.

Backends (`BACKENDS`, dispatched by the caller): `felzenszwalb`, `slic`, `grid`,
`box` (the panoptic masks replaced by their boxes, see `boxes`), `oracle`
(ground-truth masks) and `panoptic` (Mask R-CNN things + DeepLabV3 semantics, merged
like Panoptic FPN: `PanopticSegmenter`, `panoptic_merge`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage
import skimage.segmentation
import torch
from torchvision.models import segmentation as tv_segmentation
from torchvision.models.detection import maskrcnn_resnet50_fpn

BACKENDS = ("felzenszwalb", "slic", "grid", "box", "oracle", "panoptic")

# ImageNet statistics: what torchvision's DeepLabV3 expects its input normalised with.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Segmentation:
    ids: np.ndarray                      # H x W int32; 0 = void, segments 1..n
    scores: dict[int, float]             # per segment id (1.0 when the backend has none)
    categories: dict[int, str | None]
    isthing: dict[int, bool | None]

    @property
    def n(self) -> int:
        """Number of segments."""
        return len(self.scores)


# --- numbering ----------------------------------------------------------------------

def _renumber(labels: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Relabel non-zero labels to 1..n by decreasing area, ties by first raster pixel.

    Labels need not be consecutive or connected. Returns the new id map and
    {old label: new id}.
    """
    values, first, inverse, counts = np.unique(
        labels.ravel(), return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))          # last key is the primary one
    order = order[values[order] != 0]
    new_of_value = np.zeros(len(values), dtype=np.int32)
    new_of_value[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    ids = new_of_value[inverse.ravel()].reshape(labels.shape)
    return ids, {int(values[i]): int(new_of_value[i]) for i in order}


def _build(labels: np.ndarray, scores: Mapping[int, float] | None = None,
           categories: Mapping[int, str | None] | None = None,
           isthing: Mapping[int, bool | None] | None = None) -> Segmentation:
    """A Segmentation from any label map (0 = void) and metadata keyed by its labels.

    An all-void non-empty map becomes one whole-image segment without metadata.
    """
    if labels.size and not labels.any():
        labels = np.ones_like(labels)
        scores = categories = isthing = None
    ids, mapping = _renumber(labels)
    return Segmentation(
        ids=ids,
        scores={new: float((scores or {}).get(old, 1.0)) for old, new in mapping.items()},
        categories={new: (categories or {}).get(old) for old, new in mapping.items()},
        isthing={new: (isthing or {}).get(old) for old, new in mapping.items()},
    )


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")


# --- weight-free backends -----------------------------------------------------------

def felzenszwalb(image: np.ndarray, scale: float, sigma: float, min_size: int) -> Segmentation:
    """Felzenszwalb-Huttenlocher graph segmentation (scikit-image)."""
    _check_image(image)
    labels = skimage.segmentation.felzenszwalb(
        image, scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1)
    return _build(labels + 1)                     # its labels start at 0, and none is void


def slic(image: np.ndarray, n_segments: int, compactness: float) -> Segmentation:
    """SLIC superpixels (scikit-image). A uniform image is one segment.

    SLIC alone would cut a uniform image into an arbitrary grid: it has no boundary to find.
    """
    _check_image(image)
    if (image == image[0, 0]).all():
        return _build(np.ones(image.shape[:2], dtype=np.int32))
    labels = skimage.segmentation.slic(
        image, n_segments=n_segments, compactness=compactness, start_label=1, channel_axis=-1)
    return _build(labels)


def grid(height: int, width: int, rows: int, cols: int) -> Segmentation:
    """Regular rows x cols partition (ASH-Nets' grid tokens); cell sizes differ by <= 1 pixel."""
    if not (1 <= rows <= height and 1 <= cols <= width):
        raise ValueError(f"a {rows} x {cols} grid does not fit a {height} x {width} image")
    row = np.arange(height) * rows // height
    col = np.arange(width) * cols // width
    return _build(row[:, None] * cols + col[None, :] + 1)


def oracle(ids: np.ndarray, categories: Mapping[int, str | None],
           isthing: Mapping[int, bool | None]) -> Segmentation:
    """Ground-truth segments (0 = void), metadata keyed by the given ids."""
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
        raise ValueError(f"ground-truth ids must be a 2-D non-negative integer map, "
                         f"got {ids.dtype} {ids.shape}")
    return _build(ids, categories=categories, isthing=isthing)


def boxes(seg: Segmentation) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) per segment in id order; x2, y2 exclusive."""
    slices = scipy.ndimage.find_objects(seg.ids, max_label=seg.n)
    return [(sx.start, sy.start, sx.stop, sy.stop) for sy, sx in slices]


# --- panoptic: Mask R-CNN + DeepLabV3 -----------------------------------------------

def panoptic_merge(inst_masks: np.ndarray, inst_scores: np.ndarray, inst_labels: np.ndarray,
                   semantic: np.ndarray, *, thing_names: Mapping[int, str],
                   stuff_names: Mapping[int, str], score_thresh: float = 0.6,
                   mask_thresh: float = 0.5, overlap_thresh: float = 0.5,
                   stuff_min_area: int, leftover_min_area: int) -> Segmentation:
    """Panoptic FPN's merge of instance and semantic predictions.

    1. Instances with score >= score_thresh, best first, masks binarised at mask_thresh:
       one whose overlap with pixels already taken exceeds overlap_thresh of its own area is
       dropped, otherwise it takes its untaken pixels (isthing True, its thing name).
    2. Each semantic class in stuff_names takes its untaken pixels as one segment, unless
       fewer than stuff_min_area remain (isthing False).
    3. Untaken pixels split into 4-connected components; those of >= leftover_min_area
       pixels become segments (category and isthing None), smaller ones stay void.
    """
    inst_masks, inst_scores = np.asarray(inst_masks), np.asarray(inst_scores, dtype=float)
    height, width = semantic.shape
    if inst_masks.shape != (len(inst_scores), height, width) or len(inst_labels) != len(inst_scores):
        raise ValueError(f"instance masks {inst_masks.shape}, scores {len(inst_scores)} and "
                         f"labels {len(inst_labels)} do not match a {height} x {width} image")
    labels = np.zeros((height, width), dtype=np.int32)
    scores: dict[int, float] = {}
    categories: dict[int, str | None] = {}
    isthing: dict[int, bool | None] = {}

    def add(mask: np.ndarray, score: float, category: str | None, thing: bool | None) -> None:
        sid = len(scores) + 1
        labels[mask] = sid
        scores[sid], categories[sid], isthing[sid] = score, category, thing

    for i in np.argsort(-inst_scores, kind="stable"):
        if inst_scores[i] < score_thresh:
            break
        mask = inst_masks[i] >= mask_thresh
        area = int(mask.sum())
        taken = int((mask & (labels > 0)).sum())
        if area == 0 or taken / area > overlap_thresh:
            continue
        label = int(inst_labels[i])
        if label not in thing_names:
            raise ValueError(f"instance label {label} has no name in thing_names")
        add(mask & (labels == 0), float(inst_scores[i]), thing_names[label], True)

    for cls, name in sorted(stuff_names.items()):
        mask = (semantic == cls) & (labels == 0)
        if mask.sum() >= max(stuff_min_area, 1):
            add(mask, 1.0, name, False)

    components, _ = scipy.ndimage.label(labels == 0)   # default structure: 4-connected
    for comp, size in enumerate(np.bincount(components.ravel())[1:].tolist(), start=1):
        if size >= leftover_min_area:
            add(components == comp, 1.0, None, None)

    return _build(labels, scores, categories, isthing)


def _load(model: torch.nn.Module, state: Mapping[str, Any], name: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{name} weights do not fit the configured model: {e}") from e


class PanopticSegmenter:
    """Mask R-CNN (things) + DeepLabV3 (semantic classes), merged by `panoptic_merge`.

    Both are torchvision ResNet-50 models built without downloading anything and filled
    from the caller's state dicts (strict). `num_thing_classes` and `num_semantic_classes`
    include the background class 0. DeepLab's unused auxiliary head is built when its
    weights are in the state dict.

    thing_names maps every Mask R-CNN label 1..num_thing_classes-1 to a name. stuff_names
    says which DeepLab class ids count as stuff: torchvision's published DeepLabV3 weights
    know the 20 VOC categories + background, not COCO-stuff, so with them stuff is e.g.
    only the background class, or nothing (then leftovers become connected components).
    Defaults box_nms_thresh=0.5 and score_thresh=0.6 are the GSHN paper's settings;
    min_size/max_size set Mask R-CNN's input resizing.
    """

    def __init__(self, maskrcnn_state: Mapping[str, Any], deeplab_state: Mapping[str, Any], *,
                 num_thing_classes: int, num_semantic_classes: int,
                 thing_names: Mapping[int, str], stuff_names: Mapping[int, str],
                 stuff_min_area: int, leftover_min_area: int,
                 box_nms_thresh: float = 0.5, score_thresh: float = 0.6,
                 mask_thresh: float = 0.5, overlap_thresh: float = 0.5,
                 min_size: int = 800, max_size: int = 1333,
                 device: str | torch.device = "cpu") -> None:
        unnamed = set(range(1, num_thing_classes)) - set(thing_names)
        if unnamed:
            raise ValueError(f"thing_names lacks Mask R-CNN labels {sorted(unnamed)}")
        bad_stuff = [c for c in stuff_names if not 0 <= c < num_semantic_classes]
        if bad_stuff:
            raise ValueError(f"stuff_names has ids {bad_stuff} outside 0..{num_semantic_classes - 1}")
        self.device = torch.device(device)
        self.detector = maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=num_thing_classes,
            box_nms_thresh=box_nms_thresh, box_score_thresh=score_thresh,
            min_size=min_size, max_size=max_size)
        self.semantic = tv_segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=num_semantic_classes,
            aux_loss=any(k.startswith("aux_classifier.") for k in deeplab_state))
        _load(self.detector, maskrcnn_state, "Mask R-CNN")
        _load(self.semantic, deeplab_state, "DeepLabV3")
        self.detector.to(self.device).eval()
        self.semantic.to(self.device).eval()
        self.merge_args = dict(
            thing_names=dict(thing_names), stuff_names=dict(stuff_names),
            score_thresh=score_thresh, mask_thresh=mask_thresh, overlap_thresh=overlap_thresh,
            stuff_min_area=stuff_min_area, leftover_min_area=leftover_min_area)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> Segmentation:
        _check_image(image)
        x = torch.from_numpy(np.array(image)).to(self.device).permute(2, 0, 1).float() / 255.0
        det = self.detector([x])[0]                      # normalises and resizes itself
        mean = torch.tensor(_IMAGENET_MEAN, device=self.device)[:, None, None]
        std = torch.tensor(_IMAGENET_STD, device=self.device)[:, None, None]
        logits = self.semantic(((x - mean) / std)[None])["out"][0]
        return panoptic_merge(
            det["masks"][:, 0].cpu().numpy(), det["scores"].cpu().numpy(),
            det["labels"].cpu().numpy(), logits.argmax(0).cpu().numpy(), **self.merge_args)
