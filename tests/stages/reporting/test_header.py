"""The report's header names the commit (and uncommitted changes), the date and the params of the run."""
import subprocess
from datetime import UTC, datetime

import pytest

from stages.reporting import header


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "dvc.lock").write_text("x\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "vqa.json").write_text("{}\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "c")
    return tmp_path


def test_names_the_commit_and_a_dirty_tree(repo):
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert header.git_state(repo).startswith(sha) and header.git_state(repo).endswith("clean tree")
    (repo / "dvc.lock").write_text("y\n")                # what the run itself writes does not count
    (repo / "metrics" / "vqa.json").write_text('{"a": 1}\n')
    assert header.git_state(repo).endswith("clean tree")
    (repo / "params.yaml").write_text("a: 2\n")
    (repo / "new.py").write_text("")
    state = header.git_state(repo)
    assert state.startswith(sha) and "DIRTY" in state and "params.yaml" in state and "new.py" in state
    assert "dvc.lock" not in state


def test_outside_git(tmp_path):
    assert header.git_state(tmp_path) == "(not a git checkout)"


def test_params_of_the_run_only():
    raw = {"datasets": ["scenes"], "segment": {"backend": "slic"}, "model": {"preset": "ash", "T": 6}}
    used = header.used_params(raw)
    assert "flows" not in used and used["datasets"] == ["scenes"]
    assert "scenes" in used["prepare"] and "easy_vqa" not in used["prepare"] and "min_side" in used["prepare"]
    assert "slic" in used["segment"] and "felzenszwalb" not in used["segment"]
    rows = dict(header.param_rows(raw))
    assert "preset=ash" in rows["model"] and "T=6" in rows["model"] and "size=tiny" in rows["model"]  # defaults
    assert rows["datasets"] == '["scenes"]'
    box = header.used_params({"datasets": [], "segment": {"backend": "box", "box": {"source": "slic"}}})
    assert {"box", "slic"} <= set(box["segment"]) and "grid" not in box["segment"]


def test_header_blocks(tmp_path):
    blocks = header.header_blocks(tmp_path, {"datasets": ["scenes"]}, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert blocks[0] == ("p", "commit: (not a git checkout)")
    assert blocks[1] == ("p", "generated: 2026-01-02 03:04:05 UTC")
    assert blocks[2][0] == "details" and blocks[2][3][0] == ["datasets", '["scenes"]']
