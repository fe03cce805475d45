import copy
import functools
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from stages.common import params, paths

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


def test_vit_takes_the_default_layer_only(tmp_path):
    """features.layer picks a ResNet stage: with vit_b_16 it may be left out or at its default, nothing else."""
    for given in ({}, {"layer": "layer3"}):
        cfg = _load(tmp_path, {"features": {"backbone": "vit_b_16"} | given}, "features")
        assert (cfg.backbone, cfg.layer) == ("vit_b_16", "layer3")
    with pytest.raises(params.ParamsError, match=r"features: Value error, layer=layer4 has no meaning for vit_b_16 "
                                                 r"\(it pools its last encoder block's patch tokens, stride 16\): "
                                                 r"leave layer at layer3"):
        _load(tmp_path, {"features": {"backbone": "vit_b_16", "layer": "layer4"}}, "features")
    assert _load(tmp_path, {"features": {"backbone": "resnet50", "layer": "layer4"}}, "features").layer == "layer4"
    with pytest.raises(params.ParamsError, match=r"features\.backbone: Input should be .*'vit_b_16'"):
        _load(tmp_path, {"features": {"backbone": "vit_l_16"}}, "features")


def test_each_stage_reads_only_its_section(tmp_path):
    # A bad value in `features` does not stop `segment`.
    cfg = _load(tmp_path, {"features": {"max_nodes": -1}, "segment": {"backend": "grid"}}, "segment")
    assert cfg.backend == "grid"


def test_unknown_dataset(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"datasets": ["scenes", "imagenet"]}))
    with pytest.raises(params.ParamsError, match="unknown \\['imagenet'\\]"):
        params.datasets(p)



def _fields(model: BaseModel, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Key path -> value of every schema leaf (a nested section is descended into; a dict value is a leaf)."""
    out = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out |= _fields(value, (*prefix, name))
        else:
            out[(*prefix, name)] = value
    return out


def _given(raw: dict, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(raw, dict) or key not in raw:
            return False
        raw = raw[key]
    return True


def _without(raw: dict, path: tuple[str, ...]) -> dict:
    out = copy.deepcopy(raw)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


OPTIM = tuple(params.OptimParams.model_fields)


def _expected(section: str, full: dict[tuple[str, ...], object], path: tuple[str, ...]) -> object:
    """params.yaml's value at `path`; a task's optimiser key takes finetune.optim's when the task has none."""
    shared = section == "finetune" and path[0] in paths.TASKS and path[-1] in OPTIM
    return full[("optim", path[-1])] if shared else full[path]


def test_schema_defaults_equal_params_yaml():
    """Leaving a value (or a whole section) out of params.yaml gives what params.yaml gives: the schema holds no
    second default. A task's optimiser key left out is finetune.optim's."""
    raw = params.read_yaml(REPO_PARAMS)
    differ, tried = [], 0
    for section in params.SECTIONS:
        sec = raw.get(section) or {}
        full = _fields(params.validate(section, sec))
        expected = functools.partial(_expected, section, full)
        for path in [p for p in full if _given(sec, p)]:
            tried += 1
            try:
                got = _fields(params.validate(section, _without(sec, path)))[path]
            except params.ParamsError as e:         # no default: params.yaml must set it
                assert f"{section}.{'.'.join(path)}: Field required" in str(e)
                continue
            if got != expected(path) or isinstance(got, bool) != isinstance(expected(path), bool):
                differ.append(f"{section}.{'.'.join(path)}: schema {got!r}, params.yaml {expected(path)!r}")
        differ += [f"{section} left out: {'.'.join(p)} {v!r}, params.yaml {expected(p)!r}"
                   for p, v in _fields(params.SECTIONS[section]()).items() if v != expected(p)]
    assert tried > 150 and not differ, "\n".join(differ)


def test_tasks_share_finetune_optim_unless_they_set_their_own(tmp_path):
    cfg = params.load("finetune", REPO_PARAMS)
    assert cfg.itr.lr != cfg.optim.lr                  # itr sets its own lr in params.yaml
    raw = params.read_yaml(REPO_PARAMS)
    raw["finetune"]["optim"] |= {"lr": 2e-3, "snn_weight_decay": 1e-3}
    raw["finetune"]["vqa"]["snn_weight_decay"] = 7e-4
    changed = _load(tmp_path, raw, "finetune")
    assert [changed.vqa.lr, changed.ve.lr, changed.nlvr2.lr, changed.itr.lr] == [2e-3, 2e-3, 2e-3, cfg.itr.lr]
    assert [changed.vqa.snn_weight_decay, changed.ve.snn_weight_decay] == [7e-4, 1e-3]
    raw["finetune"]["optim"]["lr"] = -1.0
    with pytest.raises(params.ParamsError, match="finetune.optim.lr: Input should be greater than 0"):
        _load(tmp_path, raw, "finetune")


def test_duplicate_keys_and_repeated_datasets_are_refused(tmp_path):
    from stages.common.params import ParamsError, datasets, read_yaml
    path = tmp_path / "params.yaml"
    path.write_text("datasets: [scenes]\nmodel: {preset: gshn}\nmodel: {preset: ash}\n")
    with pytest.raises(ParamsError, match="duplicate key 'model'"):
        read_yaml(path)
    path.write_text("datasets: [scenes]\nmodel:\n  preset: gshn\n  preset: ash\n")
    with pytest.raises(ParamsError, match="duplicate key 'preset'"):
        read_yaml(path)
    path.write_text("datasets: [scenes, scenes]\n")
    with pytest.raises(ParamsError, match=r"\['scenes'\] listed more than once"):
        datasets(path)


def test_model_knobs_default_to_the_presets_and_read_on_off(tmp_path):
    """Every knob is null (the preset's value) unless set; memory: on/off, which YAML 1.1 reads as booleans."""
    cfg = params.load("model", REPO_PARAMS)
    knobs = ("continuous", "discrete", "ratio", "ratio_value", "memory", "snn_input", "warmup_objectives",
             "main_objectives", "itc_queue")
    assert all(getattr(cfg, k) is None for k in knobs)
    p = tmp_path / "params.yaml"
    for text, want in (("off", "off"), ("on", "on"), ("'off'", "off"), ("null", None)):
        p.write_text(f"model:\n  memory: {text}\n  size: ablation\n  snn_input: parallel\n")
        got = params.load("model", p)
        assert (got.memory, got.size, got.snn_input) == (want, "ablation", "parallel")


@pytest.mark.parametrize("model,message", [
    ({"memory": "maybe"}, r"model\.memory: Input should be 'on' or 'off'"),
    ({"continuous": "transformer"}, r"model\.continuous: Input should be 'gat', 'mlp', 'conv', 'snn' or 'none'"),
    ({"discrete": "conv"}, r"model\.discrete: Input should be 'snn', 'gat', 'mlp' or 'none'"),
    ({"ratio": "half"}, r"model\.ratio: Input should be 'trainable', 'fixed' or 'zero'"),
    ({"ratio_value": -1.0}, r"model\.ratio_value: Input should be greater than or equal to 0"),
    ({"main_objectives": ["itm", "vqa"]}, r"model\.main_objectives\.1: Input should be 'itc'"),
    ({"warmup_objectives": []}, r"model\.warmup_objectives: List should have at least 1 item"),
    ({"main_objectives": ["itm", "itm"]}, r"model\.main_objectives: Value error, objectives listed more than once"),
    ({"size": "huge"}, r"model\.size: Input should be 'tiny', 'minilm', 'paper' or 'ablation'"),
    ({"itc_queue": -1}, r"model\.itc_queue: Input should be greater than or equal to 0"),
    ({"itc_queue": 2.5}, r"model\.itc_queue: Input should be a valid integer"),
    ({"itc_queue": "1024"}, r"model\.itc_queue: Input should be a valid integer"),
    ({"itc_queue": 1 << 21}, r"model\.itc_queue: Input should be less than or equal to 1048576"),
])
def test_bad_model_knobs_name_the_key(tmp_path, model, message):
    with pytest.raises(params.ParamsError, match=message):
        _load(tmp_path, {"model": model}, "model")
