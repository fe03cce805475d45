from pathlib import Path

import pytest
import yaml

from stages.common import params

REPO_PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


def _load(tmp_path, data, section):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return params.load(section, p)


def test_repo_params_validate():
    for section in params.SECTIONS:
        params.load(section, REPO_PARAMS)
    assert params.datasets(REPO_PARAMS) == ["scenes", "easy_vqa"]


@pytest.mark.parametrize("data,section,message", [
    ({"segment": {"backnd": "slic"}}, "segment", r"segment\.backnd: Extra inputs are not permitted"),
    ({"segment": {"backend": "watershed"}}, "segment", r"segment\.backend: Input should be 'felzenszwalb'"),
    ({"segment": {"image_size": "big"}}, "segment", r"segment\.image_size: Input should be a valid integer"),
    ({"segment": {"image_size": 8}}, "segment", r"segment\.image_size: Input should be greater than or equal to 16"),
    ({"features": {"edges": {"knn": 0}}}, "features", r"features\.edges\.knn: Input should be greater"),
    ({"prepare": {"scenes": {"splits": {"train": 0}}}}, "prepare", r"splits\.train must be >= 1"),
    ({"prepare": {"scenes": {"splits": {"dev": 3}}}}, "prepare", r"prepare\.scenes\.splits\.dev"),
    ({"featurs": {}}, "features", r"unknown top-level keys \['featurs'\]"),
])
def test_bad_values_name_the_key(tmp_path, data, section, message):
    with pytest.raises(params.ParamsError, match=message):
        _load(tmp_path, data, section)


def test_each_stage_reads_only_its_section(tmp_path):
    # A bad value in `features` does not stop `segment`.
    cfg = _load(tmp_path, {"features": {"max_nodes": -1}, "segment": {"backend": "grid"}}, "segment")
    assert cfg.backend == "grid"


def test_unknown_dataset(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"datasets": ["scenes", "imagenet"]}))
    with pytest.raises(params.ParamsError, match="unknown \\['imagenet'\\]"):
        params.datasets(p)
