"""params.yaml overrides: written (overlay --apply, the `stage` flow; validated, comments kept) or applied to one
stage run (`--set`: every read of params.yaml in the process and its workers, the file untouched)."""
import difflib
import os
import shutil

import pytest
import yaml

from stages.common import params
from stages.common.overrides import overridden, parse_assignment, write_overrides
from stages.common.params import ParamsError
from tests.conftest import REPO


@pytest.fixture
def params_file(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path / "params.yaml"


def test_only_the_set_values_change(params_file):
    before = params_file.read_text().splitlines()
    write_overrides(params_file, {"features.max_nodes": 24, "segment.felzenszwalb.scale": 50.0})
    after = params_file.read_text().splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) == 4, changed
    assert any(line.startswith("+  max_nodes: 24 ") and "# K node slots" in line for line in changed)
    assert any(line.startswith("+  felzenszwalb: {scale: 50.0, sigma: 0.8, min_size: 10}") for line in changed)


@pytest.mark.parametrize("overrides,message", [
    ({"features.max_nodes": 0}, "features.max_nodes: Input should be greater than or equal to 1"),
    ({"features.bogus": 1}, "override 'features.bogus': features has no key 'bogus'; allowed: executor, workers"),
    ({"segment.felzenszwalb.scal": 1.0}, "segment.felzenszwalb has no key 'scal'; allowed: scale, sigma, min_size"),
    ({"nosuch.key": 1}, "override 'nosuch.key': expected datasets or <section>.<key> with a section of prepare"),
    ({"features": 1}, "override 'features': expected datasets or <section>.<key>"),
    ({"features.max_nodes.deeper": 1}, "features.max_nodes is a value, not a mapping"),
    ({"prepare.scenes.splits": {"dev": 1}}, "prepare.scenes.splits.dev"),   # a free-form mapping: its schema checks
])
def test_invalid_overrides_write_nothing(params_file, overrides, message):
    before = params_file.read_bytes()
    with pytest.raises(ParamsError, match=message):
        write_overrides(params_file, overrides)
    assert params_file.read_bytes() == before


def test_parse_assignment():
    assert parse_assignment("features.max_nodes=24") == ("features.max_nodes", 24)
    assert parse_assignment("features.weights=null") == ("features.weights", None)
    assert parse_assignment(" segment.backend = slic") == ("segment.backend", "slic")
    with pytest.raises(ParamsError, match="is not KEY=VALUE"):
        parse_assignment("features.max_nodes")


def test_datasets_and_the_whole_file_are_checked(params_file):
    write_overrides(params_file, {"datasets": ["scenes"]})
    assert yaml.safe_load(params_file.read_text())["datasets"] == ["scenes"]
    before = params_file.read_bytes()
    with pytest.raises(ParamsError, match="unknown \\['imagenet'\\]"):
        write_overrides(params_file, {"datasets": ["imagenet"]})
    assert params_file.read_bytes() == before


@pytest.fixture
def in_project(params_file, monkeypatch):
    monkeypatch.chdir(params_file.parent)
    return params_file


def test_set_applies_to_every_read_within_the_block_only(in_project):
    before = in_project.read_bytes()
    with overridden(["features.max_nodes=24", "segment.felzenszwalb.scale=50.0", "datasets=[scenes]"]) as values:
        assert values == {"features.max_nodes": 24, "segment.felzenszwalb.scale": 50.0, "datasets": ["scenes"]}
        assert params.load("features").max_nodes == 24 and params.datasets() == ["scenes"]
        assert params.load("segment").felzenszwalb.model_dump() == {"scale": 50.0, "sigma": 0.8, "min_size": 10}
    assert params.load("features").max_nodes == 36 and params.datasets() == ["scenes", "easy_vqa"]
    assert in_project.read_bytes() == before and params.SET_ENV not in os.environ


def test_set_fills_a_section_params_yaml_leaves_empty(in_project):
    in_project.write_text("datasets: [scenes]\nreport:\n")
    with overridden(["report.overlays=2"]):
        assert params.load("report").overlays == 2


@pytest.mark.parametrize("assignments,message", [
    (["features.max_nodes=0"], r"features.max_nodes: Input should be greater than or equal to 1 \(got 0\) "
                               r"\(with --set features.max_nodes=0\)"),
    (["features.max_nodes=36", "features.threads=x"], "features.threads: Input should be a valid integer"),
    (["model.preset=gsh"], "model.preset: Input should be 'gshn', 'ash'"),
    (["model.presett=gshn"], "model has no key 'presett'; allowed: preset, size"),
    (["datasets=[imagenet]"], r"unknown \['imagenet'\]"),
    (["features.max_nodes"], "is not KEY=VALUE"),
    (["features.max_nodes=[1"], "the value is not valid YAML"),
])
def test_bad_set_raises_naming_the_key(in_project, assignments, message):
    with pytest.raises(ParamsError, match=message):
        with overridden(assignments):
            pytest.fail("the block must not run")
    assert params.SET_ENV not in os.environ


def test_set_validates_only_the_sections_it_touches(in_project):
    """Like a stage, which reads only its own sections: a bad `features` does not stop a `segment` run."""
    in_project.write_text(in_project.read_text().replace("max_nodes: 36", "max_nodes: -1"))
    with overridden(["segment.backend=grid"]):
        assert params.load("segment").backend == "grid"
    with pytest.raises(ParamsError, match="features.max_nodes: Input should be greater"):
        with overridden(["features.seed=1"]):
            pass
