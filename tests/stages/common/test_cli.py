"""The one stage command wrapper: `--help` text, the stage's option, one log line and exit 2 for expected errors."""
import importlib
import json
import logging
import os
import subprocess
import sys

import pytest

from stages.common import params
from stages.common.cli import DATASET, TASK, Option, StageError, run_stage
from stages.common.params import ExecutorParams
from stages.jobs.executors import run_jobs
from tests.conftest import REPO

STAGES = ("prepare", "segment", "backbone", "features", "pretrain", "reorder", "finetune", "evaluate", "report")


class Bad(Exception):
    pass


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_main_describes_itself(name, capsys):
    module = importlib.import_module(f"stages.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m stages.{name}" in out
    first_line = module.__doc__.strip().split("\n")[0]
    assert " ".join(first_line.split()) in " ".join(out.split())     # argparse rewraps the text


def test_expected_error_is_one_line_and_exit_2(caplog):
    def fn(dataset: str) -> None:
        raise StageError(f"{dataset}: nothing to do")

    with pytest.raises(SystemExit) as exit_info:
        run_stage("segment", "Doc.", fn, ["--dataset", "scenes"], DATASET)
    assert exit_info.value.code == 2
    assert _errors(caplog) == ["segment@scenes failed: scenes: nothing to do"]


def test_stage_specific_errors_and_stage_names(caplog):
    phase = Option("phase", "phase", ("warmup", "main"), {"warmup": "pretrain_warmup", "main": "pretrain"}.get)

    def fn(value: str) -> None:
        raise Bad(value)

    with pytest.raises(Bad):             # not expected: a bug keeps its traceback
        run_stage("pretrain", None, fn, ["--phase", "warmup"], phase)
    with pytest.raises(SystemExit) as exit_info:
        run_stage("pretrain", None, fn, ["--phase", "warmup"], phase, errors=(Bad,))
    assert exit_info.value.code == 2
    assert _errors(caplog) == ["pretrain_warmup failed: warmup"]


def test_option_choices_and_no_option(caplog):
    seen = []
    run_stage("evaluate", None, seen.append, ["--task", "ve"], TASK)
    run_stage("report", None, lambda: seen.append("report"), [])
    assert seen == ["ve", "report"]
    with pytest.raises(SystemExit) as exit_info:     # argparse: not a task
        run_stage("evaluate", None, seen.append, ["--task", "vq"], TASK)
    assert exit_info.value.code == 2 and seen == ["ve", "report"]
    with pytest.raises(SystemExit):
        run_stage("report", None, lambda: None, ["--task", "ve"])
    assert all(r.levelno < logging.ERROR for r in caplog.records)



# ---- --help: the stage's DVC entry and its params, from dvc.yaml and params.yaml --------------------------
@pytest.mark.parametrize("name,argv,stage,inputs,outputs,values", [
    ("segment", ["--dataset", "scenes"], "segment@scenes", "data/prepared/scenes", "data/masks/scenes",
     ["  segment:", "    backend: felzenszwalb"]),
    ("evaluate", ["--task", "vqa"], "evaluate@vqa", "data/finetune/vqa, data/select/vqa.json",
     "data/evaluate/vqa, metrics/vqa.json",
     ["  evaluate:", "  model:", "  finetune.vqa.datasets: [scenes, easy_vqa]"]),
    ("prepare", [], "prepare@<dataset>", "data/inputs/<dataset>.json", "data/prepared/<dataset>",
     ["  prepare.min_side: 8", "  prepare.scenes:", "    splits: {train: 2000, val: 200, test: 1000}",
      "  prepare.easy_vqa:"]),
])
def test_help_names_inputs_outputs_and_params(name, argv, stage, inputs, outputs, values, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"stages.{name}").main([*argv, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert f"DVC stage {stage} (dvc.yaml)" in out
    assert f"  inputs:  {inputs}\n" in out and f"  outputs: {outputs}\n" in out
    assert all(f"\n{v}\n" in out for v in values), out
    assert "DVC does not track the run" in " ".join(out.split())


DVC_YAML = """stages:
  segment:
    foreach: ${datasets}
    do:
      cmd: python -m stages.segment --dataset ${item}
      deps:
        - stages/segment.py
        - data/elsewhere/${item}
        - data/weights/${segment.backend}.pt
      params: [segment.backend, segment.grid]
      outs:
        - data/masks/${item}
  other:
    cmd: python -m stages.features --dataset scenes
"""


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        run_stage("segment", "Stage `segment`: first paragraph\nstill it.\n\nNot this one.", print, argv, DATASET)
    return capsys.readouterr().out


def test_help_follows_dvc_yaml_params_yaml_and_set(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("datasets: [scenes, custom]\nsegment: {backend: grid}\n")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    out = _help(["--help", "--dataset", "custom"], capsys)
    assert "Stage `segment`: first paragraph still it.\n" in out and "Not this one" not in out
    assert "DVC stage segment@custom (dvc.yaml), one per item of scenes, custom:" in out
    assert "  inputs:  data/elsewhere/custom, data/weights/grid.pt\n  code:    stages/segment.py\n" in out
    assert "  params:  segment.backend, segment.grid\n" in out and "other" not in out
    assert "  segment.backend: grid\n  segment.grid:\n    rows: 6\n    cols: 6\n" in out      # schema defaults
    out = _help(["--dataset", "custom", "--set", "segment.backend=slic", "--help"], capsys)
    assert "data/weights/slic.pt" in out and "(params.yaml with --set):\n  segment.backend: slic" in out
    out = _help(["--help"], capsys)
    assert "segment@<dataset>" in out and "data/elsewhere/<dataset>," in out


@pytest.mark.parametrize("dvc_yaml", [None, "stages: [unclosed\n  - x: {\n"])
def test_help_without_a_readable_dvc_yaml_says_so_in_one_line(tmp_path, monkeypatch, capsys, dvc_yaml):
    monkeypatch.chdir(tmp_path)
    if dvc_yaml is not None:
        (tmp_path / "dvc.yaml").write_text(dvc_yaml)
    out = _help(["--help"], capsys)
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("dvc.yaml is not readable here") and last.endswith("inputs, outputs and params not listed.")


# ---- --set: this run's params, not params.yaml ---------------------------------------------------------------
def test_set_changes_what_a_real_stage_sees(workspace, tmp_path, caplog):
    import stages.inputs
    workspace({"datasets": ["scenes", "custom"]})
    before = (tmp_path / "params.yaml").read_bytes()
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"12345")
    manifest = tmp_path / "data" / "inputs" / "custom.json"
    with caplog.at_level(logging.INFO):
        stages.inputs.main(["--dataset", "custom", "--set", f"prepare.custom.root={tmp_path / 'imgs'}"])
    assert json.loads(manifest.read_text())["paths"]["root"]["files"] == 1
    assert f"inputs@custom: --set prepare.custom.root='{tmp_path / 'imgs'}' (this run only" in caplog.text
    stages.inputs.main(["--dataset", "custom"])                        # the override did not outlive its run
    assert json.loads(manifest.read_text())["paths"] == {}
    assert (tmp_path / "params.yaml").read_bytes() == before and params.SET_ENV not in os.environ


def _max_nodes(_: int) -> int:
    return params.load("features").max_nodes


def test_set_reaches_worker_processes(workspace):
    """finetune's workers read params again in their own (spawned) processes."""
    seen = []
    run_stage("features", None, lambda: seen.extend(
        r for _, r in run_jobs(_max_nodes, [0, 1], ExecutorParams(workers=2))), ["--set", "features.max_nodes=5"])
    assert seen == [5, 5] and params.load("features").max_nodes == 12


@pytest.mark.parametrize("assignment,message", [
    ("features.bogus=1", "override 'features.bogus': features has no key 'bogus'; allowed: executor, workers"),
    ("features.max_nodes=many", "features.max_nodes: Input should be a valid integer (got 'many')"),
    ("features.max_nodes", "override 'features.max_nodes' is not KEY=VALUE (e.g. features.max_nodes=24)"),
])
def test_bad_set_is_one_line_and_exit_2(workspace, caplog, assignment, message):
    seen = []
    with pytest.raises(SystemExit) as exit_info:
        run_stage("segment", None, seen.append, ["--dataset", "scenes", "--set", assignment], DATASET)
    assert exit_info.value.code == 2 and seen == [] and params.SET_ENV not in os.environ
    [error] = _errors(caplog)
    assert error.startswith("segment@scenes failed: ") and message in error and "\n" not in error


def test_bad_set_from_the_command_line_has_no_traceback(workspace):
    command = [sys.executable, "-m", "stages.inputs", "--dataset", "scenes", "--set", "features.max_nodes=0"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "inputs@scenes failed: params.yaml: features.max_nodes: Input should be greater than or equal to 1" in line
