"""Soft mask pooling (Convolutional Feature Masking, GSHN eq. 2).

Each mask is resized to the feature map by area: a cell's weight is the number of the
segment's pixels inside it. A node's feature is the coverage-weighted mean of the cells it
touches (the mean over its pixels of their cell's feature), so a segment smaller than one
cell still gets a feature: never an empty node.
"""
from __future__ import annotations

import numpy as np
import torch


def cell_index(size: int, cells: int) -> np.ndarray:
    """Feature-map cell of each pixel along one axis."""
    return (np.arange(size) * cells) // size


def mask_coverage(slots: np.ndarray, k: int, feat_hw: tuple[int, int]) -> np.ndarray:
    """Slot map H x W (0 = unused, 1..k) -> coverage k x (h*w): pixel counts per cell."""
    h, w = feat_hw
    rows = cell_index(slots.shape[0], h)[:, None]
    cols = cell_index(slots.shape[1], w)[None, :]
    cell = (rows * w + cols).ravel()
    lab = slots.ravel().astype(np.int64)
    counts = np.bincount(lab * (h * w) + cell, minlength=(k + 1) * h * w)
    return counts.reshape(k + 1, h * w)[1:].astype(np.float32)


def box_coverage(boxes: np.ndarray, image_hw: tuple[int, int], feat_hw: tuple[int, int]) -> np.ndarray:
    """Boxes k x 4 (x1, y1, x2, y2, exclusive) -> coverage k x (h*w); boxes may overlap."""
    (H, W), (h, w) = image_hw, feat_hw
    rcell, ccell = cell_index(H, h), cell_index(W, w)
    out = np.zeros((len(boxes), h * w), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        rc = np.bincount(rcell[y1:y2], minlength=h)
        cc = np.bincount(ccell[x1:x2], minlength=w)
        out[i] = np.outer(rc, cc).ravel()
    return out


def pool(features: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """features B x C x h x w, coverage B x K x (h*w) -> B x K x C (zero rows where coverage is 0)."""
    weights = coverage / coverage.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.bmm(weights, features.flatten(2).transpose(1, 2))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, N, d) over the positions where mask (B, N) is true -> (B, d); zeros for an all-false row."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)
