"""The papers' params overlay (params-paper.yaml) and the overlay tool: `dvc exp run -S` flags or `--apply`."""
import shutil

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from stages import overlay
from stages.common import params
from tests.conftest import REPO

PAPER = REPO / "params-paper.yaml"


def test_paper_overlay_validates_every_section():
    flags = overlay.flags(overlay.check(PAPER, REPO / "params.yaml"))
    full = overlay.merged(overlay.load(PAPER), params.read_yaml(REPO / "params.yaml"))
    cfg = {s: params.validate(s, full.get(s)) for s in params.SECTIONS}
    assert (cfg["model"].size, cfg["model"].T, cfg["model"].M) == ("paper", 10, 3000)
    assert (cfg["features"].backbone, cfg["segment"].backend, cfg["segment"].image_size) == \
        ("resnet101", "panoptic", 640)
    assert cfg["segment"].panoptic.maskrcnn_weights and cfg["segment"].panoptic.deeplab_weights
    p = cfg["pretrain"]
    assert (p.batch_size, p.warmup.epochs, p.main.epochs, p.main.lr, p.main.weight_decay, p.main.snn_lr) == \
        (16, 10, 30, 1e-4, 1e-2, 1e-2)
    assert set(p.datasets) == {"coco", "vg"} and set(p.datasets) <= set(full["datasets"])
    assert "model.size=paper" in flags and "segment.image_size=640" in flags


def test_flags_through_dvc_give_the_merged_params_and_keep_comments(tmp_path):
    target = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", target)
    apply_overrides(target, overlay.flags(overlay.check(PAPER, target)))       # what `dvc exp run -S` does
    applied = yaml.safe_load(target.read_text())
    assert applied == overlay.merged(overlay.load(PAPER), params.read_yaml(REPO / "params.yaml"))
    assert "# Parameters of every stage" in target.read_text()


def test_apply_writes_the_same_params_and_keeps_comments(tmp_path, monkeypatch, capsys):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    overlay.main([str(PAPER), "--apply"])
    assert capsys.readouterr().out.startswith("params.yaml: ")
    text = (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load(text) == overlay.merged(overlay.load(PAPER), params.read_yaml(REPO / "params.yaml"))
    assert "# Parameters of every stage" in text and "# K node slots" in text


def test_bad_overlays_are_refused(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump({"model": {"size": "huge"}}))
    with pytest.raises(params.ParamsError, match="model.size"):
        overlay.check(bad, REPO / "params.yaml")
    bad.write_text(yaml.safe_dump({"model": {"sise": "paper"}}))
    with pytest.raises(params.ParamsError, match="overlay key model.sise is not in params.yaml"):
        overlay.check(bad, REPO / "params.yaml")
    bad.write_text(yaml.safe_dump({"datasets": ["imagenet"]}))
    with pytest.raises(params.ParamsError, match="unknown \\['imagenet'\\]"):
        overlay.check(bad, REPO / "params.yaml")


def test_refused_apply_writes_nothing(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_bytes()
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"features": {"max_nodes": 0}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="features.max_nodes: Input should be greater than or equal to 1"):
        overlay.main(["p.yaml", "--apply"])
    assert (tmp_path / "params.yaml").read_bytes() == before


def test_values_in_override_grammar():
    assert [overlay._value(v) for v in (None, True, 3, 1e-4, [1, "a"], "a b", "../x/y.pth")] == \
        ["null", "true", "3", "0.0001", "[1,a]", "'a b'", "../x/y.pth"]
