"""The flows on a real Prefect server, over a scratch project's sub-DAG up to features@scenes."""
import uuid
from pathlib import Path

import pytest
import yaml

from flows.pipeline import pipeline
from flows.stage import rerun_stage
from tests.flows.conftest import TARGET, changed, make_project, sub_dag, write_params

pytestmark = pytest.mark.slow


def snapshot(root: Path) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Per folder under data/, every file's (inode, size, mtime): a stage that did not run leaves them as they were."""
    return {d.name: {str(p.relative_to(d)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
                     for p in sorted(d.rglob("*")) if p.is_file()}
            for d in sorted((root / "data").iterdir())}


def changed_folders(before: dict, after: dict) -> set[str]:
    return {d for d in before.keys() | after.keys() if before.get(d) != after.get(d)}


def task_runs(flow_run_id: uuid.UUID) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def test_param_change_reruns_exactly_the_affected_stages(project_copy):
    root = project_copy
    assert changed(root) == set()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["features"]["max_nodes"] = 6
    write_params(root, params)
    assert changed(root) == {TARGET}
    before = snapshot(root)

    state = pipeline(targets=[TARGET], workspace=str(root), return_state=True)
    assert state.is_completed(), state.message
    assert list(state.result()) == sub_dag(root)
    assert changed(root) == set()
    assert changed_folders(before, snapshot(root)) == {"features"}  # only features@scenes ran
    runs = task_runs(state.state_details.flow_run_id)  # one task run per stage, up to date ones included
    assert sorted(t.name for t in runs) == sorted(sub_dag(root)) and all(t.state.is_completed() for t in runs)


def test_failing_stage_is_retried_then_failed_and_downstream_not_run(prefect_api, tmp_path):
    root = make_project(tmp_path / "project", {"prepare": {"scenes": {"image_size": 16}}})  # schema: >= 32
    state = pipeline(targets=[TARGET], workspace=str(root), retries=1, retry_delay_s=0, return_state=True)
    assert state.is_failed()
    downstream = ", ".join(sub_dag(root)[1:])   # the first stage that reads prepare.scenes refuses it
    assert f"failed: inputs@scenes; not run (upstream failed): {downstream}" in state.message
    [run] = task_runs(state.state_details.flow_run_id)  # no task run for the stages downstream
    assert run.name == "inputs@scenes" and run.state.is_failed() and run.run_count == 2
    assert "prepare.scenes.image_size" in run.state.message
    assert not any((root / "data").rglob("*.tar"))  # segment and features never ran


def test_stage_flow_reruns_that_stage_only(project_copy):
    root = project_copy
    before = snapshot(root)
    outs = rerun_stage("segment@scenes", set_params={"segment.felzenszwalb.scale": 50.0}, workspace=str(root))
    assert outs == [str(root / "data/masks/scenes")]
    assert yaml.safe_load((root / "params.yaml").read_text())["segment"]["felzenszwalb"]["scale"] == 50.0
    assert changed_folders(before, snapshot(root)) == {"masks"}
    assert changed(root) == {TARGET}  # downstream is now out of date, and was left alone
