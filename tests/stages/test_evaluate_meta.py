"""Evaluation refuses finetuned weights of another model variant, down to the knobs a preset name hides."""
import json

import pytest

from stages import evaluate, finetune
from stages.common import paths
from stages.common.cli import StageError
from stages.common.params import ModelParams


def _write_meta(meta: dict) -> None:
    path = paths.task_meta("ve", "scenes")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(meta))


def test_a_knob_that_differs_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_meta(finetune.meta("ve", "scenes", ModelParams(snn_input="parallel"), 8, 12))
    assert evaluate.read_meta("ve", "scenes", ModelParams(snn_input="parallel"))["knobs"]["snn_input"] == "parallel"
    with pytest.raises(StageError, match=r"snn_input: 'parallel' vs 'serial'.*dvc repro finetune@ve"):
        evaluate.read_meta("ve", "scenes", ModelParams())          # gshn's own serial input


def test_a_meta_from_before_knobs_is_checked_by_preset_and_size_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = finetune.meta("ve", "scenes", ModelParams(), 8, 12)
    del old["knobs"]
    _write_meta(old)
    assert evaluate.read_meta("ve", "scenes", ModelParams(memory="off"))["preset"] == "gshn"
    with pytest.raises(StageError, match="finetuned from model preset 'gshn'"):
        evaluate.read_meta("ve", "scenes", ModelParams(preset="ash"))
