"""The one stage command wrapper: `--help` text, the stage's option, one log line and exit 2 for expected errors."""
import importlib
import logging

import pytest

from stages.common.cli import DATASET, TASK, Option, StageError, run_stage

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

