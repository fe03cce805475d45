"""The stage task and the stage flow's input checks, called directly (`.fn`: no Prefect server)."""
from pathlib import Path

import pytest

from flows.dag import UnknownStage
from flows.repro import StageFailed, repro_stage
from flows.stage import rerun_stage
from tests.flows.conftest import make_project, tiny_params, write_params


def test_repro_runs_then_skips_then_reports_failure(tmp_path):
    root = make_project(tmp_path / "project")
    assert repro_stage.fn(str(root), "inputs@scenes").ran
    first = repro_stage.fn(str(root), "prepare@scenes", ("data/prepared/scenes",))
    assert first.ran and first.outs == (str(root / "data/prepared/scenes"),)
    assert Path(first.outs[0], "images.parquet").is_file()
    assert not repro_stage.fn(str(root), "prepare@scenes").ran  # up to date: DVC skips it

    write_params(root, tiny_params({"prepare": {"scenes": {"image_size": 16}}}))
    with pytest.raises(StageFailed, match=r"(?s)dvc repro -s prepare@scenes exited .*prepare.scenes.image_size"):
        repro_stage.fn(str(root), "prepare@scenes")


def test_stage_flow_checks_its_input(tmp_path):
    root = make_project(tmp_path / "project")
    with pytest.raises(UnknownStage, match="unknown stage 'features'; known stages: inputs@scenes,"):
        rerun_stage.fn("features", workspace=str(root))
    with pytest.raises(FileNotFoundError, match=r"segment@scenes needs upstream outputs .*prepare@scenes: "
                                                r"data/prepared/scenes.* targets \['segment@scenes'\]"):
        rerun_stage.fn("segment@scenes", workspace=str(root))


def test_cli_refuses_unknown_names_before_starting_a_flow(tmp_path, monkeypatch):
    import flows.pipeline
    import flows.stage
    from flows.__main__ import main

    root = make_project(tmp_path / "project")
    started = []
    monkeypatch.setattr(flows.stage, "rerun_stage", lambda name, **kw: started.append(name))
    monkeypatch.setattr(flows.pipeline, "pipeline", lambda targets, **kw: started.append(targets))
    for argv in (["stage", "features@scnes"], ["pipeline", "segment@scenes", "features@scnes"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--workspace", str(root)])
        assert str(e.value.code).startswith(f"{argv[0]} failed: unknown stage 'features@scnes'; "
                                            "known stages: inputs@scenes, prepare@scenes, ")
    assert started == []
    main(["stage", "features@scenes", "--workspace", str(root)])
    main(["pipeline", "--workspace", str(root)])
    assert started == ["features@scenes", None]
