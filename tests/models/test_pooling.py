"""Soft mask pooling: hand-worked coverage and pooled features, mass preservation, padding, batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.pooling import box_coverage, cell_index, mask_coverage, pool


def fmap_2x2() -> torch.Tensor:
    """1 x 2 x 2 x 2 feature map; cell c (row-major) has features (c*5, 10 + c*10)."""
    f = torch.zeros(1, 2, 2, 2)
    for c in range(4):
        f[0, 0, c // 2, c % 2] = 5.0 * c
        f[0, 1, c // 2, c % 2] = 10.0 + 10.0 * c
    return f        # cells: 0 -> (0, 10), 1 -> (5, 20), 2 -> (10, 30), 3 -> (15, 40)


def pooled(slots: np.ndarray, k: int, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    cov = mask_coverage(slots, k, tuple(features.shape[-2:]))
    out = pool(features, torch.from_numpy(cov)[None])[0]
    return cov, out.numpy()


def test_cell_index_partitions_axis() -> None:
    assert cell_index(4, 2).tolist() == [0, 0, 1, 1]
    assert cell_index(10, 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert cell_index(7, 7).tolist() == list(range(7))


def test_one_cell_per_slot_gives_that_cells_feature() -> None:
    slots = np.array([[1, 1, 2, 2],
                      [1, 1, 2, 2],
                      [3, 3, 4, 4],
                      [3, 3, 4, 4]], np.int32)
    f = fmap_2x2()
    cov, out = pooled(slots, 4, f)
    assert cov.dtype == np.float32 and cov.shape == (4, 4)
    np.testing.assert_array_equal(cov, 4 * np.eye(4, dtype=np.float32))
    np.testing.assert_allclose(out, f[0].flatten(1).T.numpy())
    np.testing.assert_allclose(out, [[0, 10], [5, 20], [10, 30], [15, 40]])


def test_straddling_slot_gets_coverage_weighted_mean_and_tiny_slot_its_cell() -> None:
    slots = np.array([[1, 1, 1, 0],
                      [1, 1, 0, 0],
                      [0, 0, 0, 0],
                      [0, 0, 0, 2]], np.int32)
    cov, out = pooled(slots, 2, fmap_2x2())
    # slot 1: 4 pixels in cell 0, 1 pixel in cell 1
    # slot 2: a single pixel (a quarter of a cell) in cell 3
    np.testing.assert_array_equal(cov, [[4, 1, 0, 0],
                                        [0, 0, 0, 1]])
    # slot 1: ((4 * 0 + 1 * 5) / 5, (4 * 10 + 1 * 20) / 5) = (1, 12)
    np.testing.assert_allclose(out[0], [1.0, 12.0], rtol=1e-6)
    # never an empty node: the 1-pixel segment gets cell 3's feature
    np.testing.assert_allclose(out[1], [15.0, 40.0], rtol=1e-6)


@pytest.mark.parametrize("y, x", [(0, 0), (3, 3), (4, 4), (6, 7), (9, 9), (5, 2)])
def test_one_pixel_segment_smaller_than_a_cell(y: int, x: int) -> None:
    """10x10 image on a 3x3 map (cells 4/3/3 pixels tall): a 1-pixel segment is never empty."""
    slots = np.zeros((10, 10), np.int32)
    slots[y, x] = 1
    rng = np.random.default_rng(0)
    f = torch.from_numpy(rng.normal(size=(1, 5, 3, 3)).astype(np.float32))
    cov, out = pooled(slots, 1, f)
    cell = cell_index(10, 3)[y] * 3 + cell_index(10, 3)[x]
    want = np.zeros((1, 9), np.float32)
    want[0, cell] = 1
    np.testing.assert_array_equal(cov, want)
    np.testing.assert_allclose(out[0], f[0].flatten(1)[:, cell].numpy(), rtol=1e-6)
    assert np.abs(out[0]).sum() > 0


@pytest.mark.parametrize("image_hw, feat_hw", [((10, 10), (3, 3)), ((64, 64), (4, 4)), ((13, 7), (2, 5)),
                                               ((5, 5), (5, 5)), ((9, 11), (1, 1))])
def test_coverage_preserves_mass(image_hw: tuple[int, int], feat_hw: tuple[int, int]) -> None:
    k = 6
    slots = np.random.default_rng(1).integers(0, k + 1, image_hw).astype(np.int32)
    cov = mask_coverage(slots, k, feat_hw)
    assert cov.shape == (k, feat_hw[0] * feat_hw[1])
    assert (cov >= 0).all()
    areas = np.bincount(slots.ravel(), minlength=k + 1)[1:]
    np.testing.assert_array_equal(cov.sum(1), areas)
    # per cell, segments + void account for exactly the cell's pixels; every cell gets some
    rows = np.bincount(cell_index(image_hw[0], feat_hw[0]), minlength=feat_hw[0])
    cols = np.bincount(cell_index(image_hw[1], feat_hw[1]), minlength=feat_hw[1])
    void = mask_coverage((slots == 0).astype(np.int32), 1, feat_hw)[0]
    np.testing.assert_array_equal(cov.sum(0) + void, np.outer(rows, cols).ravel())
    assert (rows > 0).all() and (cols > 0).all()


def test_unused_slot_has_zero_coverage_and_zero_feature() -> None:
    slots = np.zeros((4, 4), np.int32)
    slots[:2, :2] = 1                                  # slot 2 of k=2 is absent
    cov, out = pooled(slots, 2, fmap_2x2())
    np.testing.assert_array_equal(cov[1], 0)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], 0)


def test_box_coverage_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 4, 2],      # x1, y1, x2, y2 (exclusive): the top half
                      [1, 1, 3, 3],      # the centre 2x2: one pixel in each cell, overlaps box 0
                      [0, 0, 4, 4],      # the whole image
                      [2, 2, 10, 10]],   # runs off the image: clipped to the bottom-right cell
                     np.float32)
    cov = box_coverage(boxes, (4, 4), (2, 2))
    assert cov.dtype == np.float32
    np.testing.assert_array_equal(cov, [[2 * 2, 2 * 2, 0, 0],
                                        [1, 1, 1, 1],
                                        [4, 4, 4, 4],
                                        [0, 0, 0, 4]])
    out = pool(fmap_2x2(), torch.from_numpy(cov)[None])[0].numpy()
    np.testing.assert_allclose(out, [[2.5, 15], [7.5, 25], [7.5, 25], [15, 40]], rtol=1e-6)


def test_box_coverage_equals_mask_coverage_of_the_filled_box() -> None:
    rng = np.random.default_rng(3)
    H, W, feat = 10, 13, (3, 4)
    for _ in range(20):
        x1, x2 = sorted(rng.choice(W + 1, 2, replace=False))
        y1, y2 = sorted(rng.choice(H + 1, 2, replace=False))
        slots = np.zeros((H, W), np.int32)
        slots[y1:y2, x1:x2] = 1
        got = box_coverage(np.array([[x1, y1, x2, y2]]), (H, W), feat)
        np.testing.assert_array_equal(got, mask_coverage(slots, 1, feat))
        assert got.sum() == (x2 - x1) * (y2 - y1)


def test_pool_zero_coverage_row_is_zero_not_nan() -> None:
    f = fmap_2x2()
    cov = torch.tensor([[[4.0, 1, 0, 0],
                         [0, 0, 0, 0]]])        # second row is padding
    out = pool(f, cov)
    assert out.shape == (1, 2, 2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 0], torch.tensor([1.0, 12.0]))
    torch.testing.assert_close(out[0, 1], torch.zeros(2))


def test_pool_is_invariant_to_coverage_scale() -> None:
    """Only relative coverage matters: pixel counts and cell fractions pool alike on equal cells."""
    f = fmap_2x2()
    cov = torch.tensor([[[4.0, 1, 0, 0]]])
    torch.testing.assert_close(pool(f, cov), pool(f, cov / 4))


def test_pool_batch() -> None:
    rng = np.random.default_rng(2)
    B, C, h, w, K = 3, 4, 3, 3, 5
    f = torch.from_numpy(rng.normal(size=(B, C, h, w)).astype(np.float32))
    covs = []
    for _ in range(B):
        slots = rng.integers(0, K + 1, (10, 10)).astype(np.int32)
        covs.append(mask_coverage(slots, K, (h, w)))
    covs[1][2:] = 0                                       # item 1 has only 2 nodes: padded rows
    cov = torch.from_numpy(np.stack(covs))
    out = pool(f, cov)
    assert out.shape == (B, K, C)
    for b in range(B):
        single = pool(f[b: b + 1], cov[b: b + 1])[0]
        torch.testing.assert_close(out[b], single)
        # by hand: sum_c cov[k, c] * f[:, c] / sum_c cov[k, c]
        for k in range(K):
            s = cov[b, k].sum()
            want = (f[b].flatten(1) * cov[b, k]).sum(1) / s if s > 0 else torch.zeros(C)
            torch.testing.assert_close(out[b, k], want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[1, 2:], torch.zeros(K - 2, C))
