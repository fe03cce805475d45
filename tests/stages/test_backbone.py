"""backbone stage on tiny scenes: trains, writes weights that `features` loads, pooled targets, errors, resume."""
import json
import shutil

import numpy as np
import pytest
import torch
import torchvision

from models import pooling
from models.attribute_head import IGNORE
from stages import backbone, features, prepare, segment
from stages.common import params, paths
from stages.common.cli import StageError
from storage.shards import ShardReader, npy_load


def _tiny(workspace, overrides=None):
    workspace(overrides or {})
    prepare.run("scenes")


def test_trains_and_features_load_the_weights(workspace, tmp_path, one_thread):
    _tiny(workspace)
    report = backbone.run()
    weights = tmp_path / "data/backbone/resnet18.pt"
    sd = torch.load(weights, weights_only=True)
    assert sd.keys() == torchvision.models.resnet18(weights=None).state_dict().keys()  # torchvision's own keys
    assert "layer3.1.bn2.running_var" in sd  # batch norm kept unfolded
    torch.manual_seed(0)
    init = torchvision.models.resnet18(weights=None).state_dict()
    assert torch.equal(sd["layer1.0.conv1.weight"], init["layer1.0.conv1.weight"])  # before train_from: layer2
    assert not torch.equal(sd["layer2.0.conv1.weight"], init["layer2.0.conv1.weight"])
    assert torch.equal(sd["layer4.0.conv1.weight"], init["layer4.0.conv1.weight"])  # after features.layer: never run
    metrics = json.loads((tmp_path / "data/backbone/metrics.json").read_text())
    assert metrics == json.loads(json.dumps(report))
    assert metrics["steps"] == 2 and metrics["val_images"] == 4  # 16 images / batch 8; the tiny val split
    assert 0 <= metrics["val_shape_acc"] <= 1 and metrics["val_color_segments"] > 0
    assert 0 < metrics["val_shape_large_segments"] < metrics["val_shape_segments"] == metrics["val_color_segments"]
    log = (tmp_path / "data/backbone/train/plots/losses.tsv").read_text()
    assert log.startswith("step\t") and (tmp_path / "plots/backbone.tsv").read_text() == log   # the git-tracked copy

    workspace({"features": {"weights": str(weights)}})
    features.build_backbone.cache_clear()
    segment.run("scenes")
    features.run("scenes")
    assert json.loads((tmp_path / "data/features/scenes/meta.json").read_text())["random_init"] is False
    trained = features.build_backbone("resnet18", "layer3", 64, str(weights), 0, "cpu")
    random = features.build_backbone("resnet18", "layer3", 64, None, 0, "cpu")
    image = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    assert not torch.allclose(trained(image), random(image))
    with ShardReader(tmp_path / "data/features/scenes") as fr:
        assert np.isfinite(npy_load(fr.get(fr.ids[0])["nodes.npy"])).all()


def test_vit_asks_for_a_weights_file(workspace):
    """The stage trains ResNets only: for vit_b_16 it stops before reading data and says what to supply."""
    workspace({"features": {"backbone": "vit_b_16"}})
    with pytest.raises(StageError, match=r"features.backbone=vit_b_16 cannot be pre-trained by this stage "
                                         r"\(ResNets only\): set features.weights to a local vit_b_16 state dict"):
        backbone.run()


def test_pooled_targets_on_a_constructed_mask():
    """Two segments on a 32 x 32 image (stride 16 -> 2 x 2 cells): coverage counts and targets per segment."""
    ids = np.ones((1, 32, 32), np.int16)
    ids[0, 4:12, 20:30] = 2                      # 8 x 10 thing inside cell (0, 1)
    ids[0, 14:18, 0:32] = 3                      # a stuff band across the cell rows' border
    targets = {"category": np.array([[IGNORE, 7, 1, 8]]), "color": np.array([[IGNORE, IGNORE, 4, IGNORE]])}
    data = backbone.Segments(np.zeros((1, 32, 32, 3), np.uint8), ids, targets, np.zeros((1, 4), bool))
    batch = backbone.Collator(data, 16, None)([0])
    cov = batch.coverage[0].numpy()
    assert cov.shape == (3, 4)
    np.testing.assert_array_equal(cov[1], [0, 80, 0, 0])
    np.testing.assert_array_equal(cov[2], [32, 32, 32, 32])
    np.testing.assert_array_equal(cov[0], [256 - 32, 256 - 80 - 32, 256 - 32, 256 - 32])
    assert cov.sum() == 32 * 32
    fmap = torch.arange(4.0).view(1, 1, 2, 2)           # cell r, c holds 2r + c
    np.testing.assert_allclose(pooling.pool(fmap, batch.coverage)[0, 1:, 0].numpy(), [1.0, 1.5])
    assert batch.targets["category"].tolist() == [[7, 1, 8]]
    assert batch.targets["color"].tolist() == [[IGNORE, 4, IGNORE]]


def test_augmented_batch_keeps_targets_consistent(workspace, one_thread):
    _tiny(workspace)
    root = paths.prepared("scenes")
    rows = [r for r in backbone.read_table(backbone.table_path(root, "images"), "images").to_pylist()
            if r["split"] == "train"][:8]
    data = backbone.load_split("scenes", rows)
    collate = backbone.Collator(data, 16, params.load("backbone").augment)
    torch.manual_seed(0)
    a = collate(list(range(8)))
    torch.manual_seed(0)
    b = collate(list(range(8)))
    assert torch.equal(a.images, b.images) and torch.equal(a.coverage, b.coverage)  # seeded by the trainer
    assert a.images.shape == (8, 3, 64, 64) and 0 <= a.images.min() and a.images.max() <= 255
    counted = a.coverage.sum(-1)
    for name, t in a.targets.items():
        assert t.shape == counted.shape
        assert (counted[t != IGNORE] >= backbone.MIN_PIXELS).all(), name  # a target needs visible pixels
    assert (a.coverage.sum((1, 2)) == 64 * 64).all()  # every pixel belongs to one segment


def test_needs_ground_truth(workspace):
    workspace({"backbone": {"dataset": "easy_vqa"}})
    with pytest.raises(StageError, match="backbone.dataset=easy_vqa has no ground-truth segments"):
        backbone.run()


def test_train_from_must_lie_in_the_trunk(workspace):
    _tiny(workspace, {"features": {"layer": "layer2"}, "backbone": {"train_from": "layer3"}})
    with pytest.raises(StageError, match="backbone.train_from: train_from must be conv1 or a layer up to layer2"):
        backbone.run()


def test_old_ground_truth_without_colours_is_refused(workspace, tmp_path):
    _tiny(workspace)
    gt = next((tmp_path / "data/prepared/scenes/gt").glob("scenes-train-000000.json"))
    gt.write_text(json.dumps([{k: v for k, v in s.items() if k != "color"} for s in json.loads(gt.read_text())]))
    with pytest.raises(StageError, match="regenerate the dataset"):
        backbone.run()


def test_resumes_after_a_kill(workspace, tmp_path, one_thread, monkeypatch):
    _tiny(workspace, {"backbone": {"epochs": 2}})
    backbone.run()
    whole = torch.load(tmp_path / "data/backbone/resnet18.pt", weights_only=True)
    losses = (tmp_path / "data/backbone/train/plots/losses.tsv").read_text()
    shutil.rmtree(tmp_path / "data/backbone")
    real, calls = backbone.Collator.__call__, []

    def dies_in_epoch_2(self, spec):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, spec)

    monkeypatch.setattr(backbone.Collator, "__call__", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        backbone.run()
    monkeypatch.setattr(backbone.Collator, "__call__", real)
    state = json.loads((tmp_path / "data/backbone/train/checkpoint/state.json").read_text())["state"]
    assert (state["epoch"], state["step"]) == (1, 2)
    backbone.run()
    resumed = torch.load(tmp_path / "data/backbone/resnet18.pt", weights_only=True)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert (tmp_path / "data/backbone/train/plots/losses.tsv").read_text() == losses
