"""The one params.yaml overrides writer (overlay --apply, the `stage` flow): validated, comments kept."""
import difflib
import shutil

import pytest
import yaml

from stages.common.overrides import parse_assignment, write_overrides
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
    ({"features.bogus": 1}, "features.bogus: Extra inputs are not permitted"),
    ({"nosuch.key": 1}, "override 'nosuch.key': expected datasets or <section>.<key> with a section of prepare"),
    ({"features": 1}, "override 'features': expected datasets or <section>.<key>"),
    ({"features.max_nodes.deeper": 1}, "max_nodes is not a mapping"),
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
