import numpy as np
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.segmentation import deeplabv3_resnet50

from models import segmenters as S


def synthetic_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """Two flat regions, a few coloured rectangles and a little noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), dtype=np.float64)
    img[: size // 2] = (90, 140, 220)                      # "sky"
    img[size // 2:] = (60, 160, 60)                        # "grass"
    for _ in range(4):
        y, x = rng.integers(0, size - size // 4, 2)
        h, w = rng.integers(size // 8, size // 4, 2)
        img[y:y + h, x:x + w] = rng.integers(0, 256, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def assert_valid(seg: S.Segmentation, shape: tuple[int, int]) -> None:
    assert seg.ids.dtype == np.int32 and seg.ids.shape == shape
    present = np.unique(seg.ids[seg.ids > 0])
    n = len(present)
    assert n >= 1 and present.tolist() == list(range(1, n + 1))
    assert set(seg.scores) == set(seg.categories) == set(seg.isthing) == set(range(1, n + 1))
    assert seg.n == n
    areas = np.bincount(seg.ids.ravel(), minlength=n + 1)[1:]
    firsts = [np.flatnonzero(seg.ids.ravel() == i)[0] for i in range(1, n + 1)]
    keys = list(zip((-areas).tolist(), firsts))
    assert keys == sorted(keys), "ids must follow decreasing area, then raster order"


def assert_same(a: S.Segmentation, b: S.Segmentation) -> None:
    assert np.array_equal(a.ids, b.ids)
    assert (a.scores, a.categories, a.isthing) == (b.scores, b.categories, b.isthing)


WEIGHT_FREE = {
    "felzenszwalb": lambda im: S.felzenszwalb(im, scale=100, sigma=0.5, min_size=20),
    "slic": lambda im: S.slic(im, n_segments=30, compactness=10),
    "grid": lambda im: S.grid(im.shape[0], im.shape[1], min(4, im.shape[0]), min(4, im.shape[1])),
}


def test_backends_registry():
    assert S.BACKENDS == ("felzenszwalb", "slic", "grid", "box", "oracle", "panoptic")


@pytest.mark.parametrize("name", WEIGHT_FREE)
@pytest.mark.parametrize("size", [1, 8, 64])
def test_weight_free_valid_and_deterministic(name, size):
    img = synthetic_image(size) if size > 1 else np.full((1, 1, 3), 7, np.uint8)
    seg = WEIGHT_FREE[name](img)
    assert_valid(seg, (size, size))
    assert (seg.ids > 0).all()
    assert set(seg.scores.values()) == {1.0}
    assert_same(seg, WEIGHT_FREE[name](img.copy()))


@pytest.mark.parametrize("name", ["felzenszwalb", "slic"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 1), (8, 8), (40, 30)])
def test_flat_image_is_one_segment(name, shape):
    seg = WEIGHT_FREE[name](np.full((*shape, 3), (10, 200, 30), np.uint8))
    assert seg.n == 1 and (seg.ids == 1).all()


def test_segmenters_find_structure():
    img = synthetic_image(64)
    assert 3 <= S.felzenszwalb(img, scale=100, sigma=0.5, min_size=20).n <= 60
    assert 3 <= S.slic(img, n_segments=30, compactness=10).n <= 60


def test_renumber_handles_gaps_and_disconnected_labels():
    labels = np.array([[7, 7, 0, 3],
                       [9, 9, 9, 3],
                       [7, 0, 0, 3]])                     # label 7 is disconnected
    seg = S.oracle(labels, {7: "cat", 3: "sky", 9: "dog"}, {7: True, 3: False, 9: True})
    # areas: 3 -> 3 (first at 3), 7 -> 3 (first at 0), 9 -> 3 (first at 4): ties by raster
    assert seg.ids.tolist() == [[1, 1, 0, 2], [3, 3, 3, 2], [1, 0, 0, 2]]
    assert seg.categories == {1: "cat", 2: "sky", 3: "dog"}
    assert seg.isthing == {1: True, 2: False, 3: True}


def test_oracle_metadata_and_void():
    gt = np.zeros((6, 6), np.int64)
    gt[:, :4] = 5
    gt[:2, 4:] = 2
    seg = S.oracle(gt, {5: "grass"}, {5: False, 2: True})
    assert_valid(seg, (6, 6))
    assert (seg.ids[2:, 4:] == 0).all()                   # void stays void
    assert seg.categories == {1: "grass", 2: None} and seg.isthing == {1: False, 2: True}
    assert S.oracle(np.zeros((3, 3), int), {}, {}).n == 1  # all void -> one segment
    with pytest.raises(ValueError):
        S.oracle(-np.ones((2, 2), int), {}, {})


def test_grid_cells():
    seg = S.grid(10, 9, 3, 4)
    assert_valid(seg, (10, 9))
    assert seg.n == 12
    areas = np.bincount(seg.ids.ravel())[1:]
    assert areas.max() - areas.min() <= 3 + 4             # rows and cols each differ by <= 1
    assert sorted(S.boxes(S.grid(8, 8, 2, 2))) == [(0, 0, 4, 4), (0, 4, 4, 8), (4, 0, 8, 4), (4, 4, 8, 8)]
    assert S.grid(1, 1, 1, 1).n == 1
    for rows, cols in [(11, 1), (1, 10), (0, 2)]:
        with pytest.raises(ValueError):
            S.grid(10, 9, rows, cols)


def test_boxes():
    ids = np.array([[1, 1, 0],
                    [2, 1, 0],
                    [2, 2, 3]], dtype=np.int32)
    seg = S.Segmentation(ids, {1: 1.0, 2: 1.0, 3: 1.0}, dict.fromkeys((1, 2, 3)), dict.fromkeys((1, 2, 3)))
    assert S.boxes(seg) == [(0, 0, 2, 2), (0, 1, 2, 3), (2, 2, 3, 3)]


def test_bad_image_rejected():
    with pytest.raises(ValueError):
        S.felzenszwalb(np.zeros((4, 4), np.uint8), scale=1, sigma=0, min_size=1)
    with pytest.raises(ValueError):
        S.slic(np.zeros((4, 4, 3), np.float32), n_segments=4, compactness=10)


# --- panoptic merge -----------------------------------------------------------------

THINGS = {1: "circle", 2: "square"}
STUFF = {5: "sky", 6: "grass"}


def box_mask(h, w, y0, y1, x0, x1, value=1.0):
    m = np.zeros((h, w), np.float32)
    m[y0:y1, x0:x1] = value
    return m


def merge(masks, scores, labels, semantic, **kw):
    args = dict(thing_names=THINGS, stuff_names=STUFF, stuff_min_area=4, leftover_min_area=3)
    return S.panoptic_merge(np.asarray(masks, np.float32).reshape(-1, *semantic.shape),
                            np.asarray(scores, np.float32), np.asarray(labels, np.int64),
                            semantic, **{**args, **kw})


def segment_at(seg, y, x):
    sid = int(seg.ids[y, x])
    return sid, seg.categories.get(sid), seg.isthing.get(sid), seg.scores.get(sid)


def test_merge_score_threshold_and_overlaps():
    h, w = 10, 10
    semantic = np.full((h, w), 5)
    masks = [
        box_mask(h, w, 0, 4, 0, 4, 0.9),       # A: 16 px, score .9
        box_mask(h, w, 0, 4, 1, 5, 0.7),       # B: 12/16 over A -> dropped
        box_mask(h, w, 2, 6, 2, 6, 0.8),       # C: 4/16 over A -> keeps its 12 untaken px
        box_mask(h, w, 6, 10, 6, 10, 0.9),     # D: score .5 < .6 -> ignored
        box_mask(h, w, 8, 10, 0, 2, 0.4),      # E: mask below 0.5 everywhere -> empty
    ]
    seg = merge(masks, [0.9, 0.85, 0.8, 0.5, 0.95], [1, 2, 2, 1, 1], semantic)
    assert_valid(seg, (h, w))
    a, c = segment_at(seg, 0, 0), segment_at(seg, 5, 5)
    assert a[1:] == ("circle", True, pytest.approx(0.9))
    assert c[1:] == ("square", True, pytest.approx(0.8))
    assert (seg.ids == a[0]).sum() == 16 and (seg.ids == c[0]).sum() == 12
    assert segment_at(seg, 3, 3)[0] == a[0]                # overlap stays with A
    sky = segment_at(seg, 9, 9)
    assert sky[1:] == ("sky", False, 1.0) and (seg.ids == sky[0]).sum() == 100 - 28
    assert seg.n == 3


def test_merge_overlap_threshold_is_strict_and_configurable():
    h, w = 4, 8
    semantic = np.zeros((h, w), int)
    masks = [box_mask(h, w, 0, 4, 0, 4), box_mask(h, w, 0, 4, 2, 6)]  # exactly half overlaps
    kept = merge(masks, [0.9, 0.8], [1, 2], semantic, leftover_min_area=100)
    assert kept.n == 2 and sorted(kept.categories.values()) == ["circle", "square"]
    dropped = merge(masks, [0.9, 0.8], [1, 2], semantic, overlap_thresh=0.4, leftover_min_area=100)
    assert dropped.n == 1 and dropped.categories == {1: "circle"}
    assert (dropped.ids[:, 4:] == 0).all()                 # small leftover stays void


def test_merge_stuff_small_stuff_and_leftover_components():
    h, w = 8, 9
    semantic = np.zeros((h, w), int)
    semantic[:4] = 6                  # grass: 36 px
    semantic[4:, :2] = 5              # sky: 8 px, but the thing below takes 6 -> 2 left
    semantic[4:, 2:] = 0              # class 0 is not stuff -> leftover
    semantic[4:, 4] = 6               # a grass stripe cutting the leftover into two parts
    masks = [box_mask(h, w, 5, 8, 0, 2)]
    seg = merge(masks, [0.99], [2], semantic, stuff_min_area=3, leftover_min_area=3)
    assert_valid(seg, (h, w))
    assert segment_at(seg, 6, 1)[1:3] == ("square", True)
    assert "sky" not in seg.categories.values()            # 2 px of sky < stuff_min_area
    grass = segment_at(seg, 0, 0)
    assert grass[1:3] == ("grass", False)
    assert segment_at(seg, 7, 4)[0] == grass[0]            # one segment per stuff class
    left, right = segment_at(seg, 4, 2), segment_at(seg, 4, 8)
    assert left[0] != right[0] and left[0] > 0 and right[0] > 0
    assert segment_at(seg, 4, 0)[0] == left[0]             # dropped sky joins the leftover
    assert left[1:] == (None, None, 1.0) and right[1:] == (None, None, 1.0)
    assert seg.n == 4


def test_merge_all_void_is_one_segment():
    semantic = np.zeros((5, 5), int)
    seg = merge(np.zeros((0, 5, 5)), [], [], semantic, leftover_min_area=1000)
    assert seg.n == 1 and (seg.ids == 1).all()
    assert (seg.categories, seg.isthing, seg.scores) == ({1: None}, {1: None}, {1: 1.0})


def test_merge_accepts_bool_masks_and_checks_shapes():
    semantic = np.zeros((4, 4), int)
    masks = np.zeros((1, 4, 4), bool)
    masks[0, :2] = True
    seg = S.panoptic_merge(masks, np.array([0.9]), np.array([1]), semantic, thing_names=THINGS,
                           stuff_names={}, stuff_min_area=1, leftover_min_area=1)
    assert seg.categories == {1: "circle", 2: None}        # equal areas: raster order
    with pytest.raises(ValueError):
        S.panoptic_merge(masks, np.array([0.9, 0.8]), np.array([1, 1]), semantic,
                         thing_names=THINGS, stuff_names={}, stuff_min_area=1, leftover_min_area=1)
    with pytest.raises(ValueError, match="label 3"):
        S.panoptic_merge(masks, np.array([0.9]), np.array([3]), semantic, thing_names=THINGS,
                         stuff_names={}, stuff_min_area=1, leftover_min_area=1)


# --- PanopticSegmenter --------------------------------------------------------------

N_THINGS, N_SEMANTIC = 4, 4           # Mask R-CNN: 3 things + background; DeepLab: 4 classes


@pytest.fixture(scope="module")
def states():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    detector = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=N_THINGS)
    semantic = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=N_SEMANTIC,
                                  aux_loss=True)
    return detector.state_dict(), semantic.state_dict()


def make_segmenter(maskrcnn_state, deeplab_state):
    return S.PanopticSegmenter(
        maskrcnn_state, deeplab_state, num_thing_classes=N_THINGS, num_semantic_classes=N_SEMANTIC,
        thing_names={1: "circle", 2: "square", 3: "star"}, stuff_names={0: "background", 2: "sky"},
        stuff_min_area=16, leftover_min_area=16, min_size=64, max_size=64)


def test_panoptic_segmenter_runs(states):
    segmenter = make_segmenter(*states)
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    seg = segmenter(img)
    assert_valid(seg, (64, 64))
    for sid in range(1, seg.n + 1):
        if seg.isthing[sid]:
            assert seg.categories[sid] in {"circle", "square", "star"} and seg.scores[sid] >= 0.6
        else:
            assert seg.categories[sid] in {"background", "sky", None} and seg.scores[sid] == 1.0
    assert_same(seg, segmenter(img))


def test_panoptic_segmenter_rejects_wrong_weights(states):
    maskrcnn_state, deeplab_state = states
    bad = dict(deeplab_state)
    bad["classifier.4.weight"] = torch.zeros(N_SEMANTIC + 1, 256, 1, 1)
    with pytest.raises(ValueError, match="(?s)DeepLabV3.*classifier.4.weight"):
        make_segmenter(maskrcnn_state, bad)
    bad = dict(maskrcnn_state)
    bad["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(7, 1024)
    with pytest.raises(ValueError, match="(?s)Mask R-CNN.*cls_score"):
        make_segmenter(bad, deeplab_state)
    with pytest.raises(ValueError, match="thing_names"):
        S.PanopticSegmenter(maskrcnn_state, deeplab_state, num_thing_classes=N_THINGS,
                            num_semantic_classes=N_SEMANTIC, thing_names={1: "circle"},
                            stuff_names={}, stuff_min_area=1, leftover_min_area=1)
