"""One `dvc repro` per workspace: a second flow waits for the lock, then refuses with a clear message."""
import threading
import time

import pytest

from flows.lock import LOCK_FILE, WorkspaceBusy, workspace_lock
from flows.pipeline import pipeline
from flows.stage import rerun_stage
from tests.flows.conftest import TARGET, make_project


def test_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    with workspace_lock(tmp_path, "flow run 'first'", wait_s=0):
        assert "flow run 'first' (pid" in (tmp_path / LOCK_FILE).read_text()
        with pytest.raises(WorkspaceBusy, match=r"busy: flow run 'first' \(pid \d+, since .*\) is running `dvc repro`"):
            with workspace_lock(tmp_path, "second", wait_s=0.3):
                pass
    with workspace_lock(tmp_path, "third", wait_s=0):  # released: free again
        pass


def test_waiter_gets_the_lock_when_released(tmp_path):
    held, messages = threading.Event(), []

    def hold() -> None:
        with workspace_lock(tmp_path, "flow run 'first'", wait_s=0):
            held.set()
            time.sleep(0.6)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    start = time.monotonic()
    with workspace_lock(tmp_path, "second", wait_s=10, notify=messages.append):
        waited = time.monotonic() - start
    t.join()
    assert 0.2 < waited < 5
    assert len(messages) == 1 and messages[0].startswith("waiting up to 10 s for flow run 'first'")


def test_released_after_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        with workspace_lock(tmp_path, "first", wait_s=0):
            raise RuntimeError("stage failed")
    with workspace_lock(tmp_path, "second", wait_s=0):
        pass


def test_flows_refuse_a_busy_workspace(tmp_path):
    root = make_project(tmp_path / "project")
    with workspace_lock(root, "flow run 'nightly'", wait_s=0):
        with pytest.raises(WorkspaceBusy, match="flow run 'nightly'"):
            pipeline.fn(targets=[TARGET], workspace=str(root), lock_wait_s=0)
        with pytest.raises(WorkspaceBusy, match="flow run 'nightly'"):
            rerun_stage.fn("inputs@scenes", workspace=str(root), lock_wait_s=0)
    assert not (root / "data").exists()  # nothing ran
