"""inputs@<dataset>: the manifest changes exactly when a file prepare reads from outside the project does."""
import json
import os
from pathlib import Path

import pytest

from stages import inputs
from stages.common import paths
from stages.common.cli import StageError


def _custom(workspace, tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(b"a" * 10)
    (root / "sub" / "b.png").write_bytes(b"b" * 20)
    ann = tmp_path / "ann.jsonl"
    ann.write_text('{"image": "a.png"}\n')
    workspace({"datasets": ["scenes", "custom"], "prepare": {"custom": {"root": str(root), "annotations": str(ann)}}})
    return root


def _manifest() -> tuple[dict, int]:
    target = paths.inputs_manifest("custom")
    return json.loads(target.read_text()), target.stat().st_ino


def test_lists_the_named_paths_and_rewrites_only_on_change(workspace, tmp_path):
    root = _custom(workspace, tmp_path)
    inputs.run("custom")
    first, inode = _manifest()
    assert first["paths"]["root"] | {"digest": None} == {"path": str(root), "files": 2, "bytes": 30, "digest": None}
    assert first["paths"]["annotations"]["files"] == 1
    inputs.run("custom")
    assert _manifest() == (first, inode)            # unchanged: the same file, so DVC keeps prepare cached

    (root / "sub" / "b.png").write_bytes(b"c" * 20)   # an image replaced in place, same size
    os.utime(root / "sub" / "b.png", ns=(1, 1))
    inputs.run("custom")
    replaced, _ = _manifest()
    assert replaced["paths"]["root"]["digest"] != first["paths"]["root"]["digest"]
    assert replaced["paths"]["annotations"] == first["paths"]["annotations"]

    (tmp_path / "ann.jsonl").write_text('{"image": "a.png"}\n{"image": "sub/b.png"}\n')
    inputs.run("custom")
    assert _manifest()[0]["paths"]["annotations"]["bytes"] != first["paths"]["annotations"]["bytes"]


def test_symlink_loops_and_missing_paths_do_not_stop_it(workspace, tmp_path):
    root = _custom(workspace, tmp_path)
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    inputs.run("custom")
    assert _manifest()[0]["paths"]["root"]["files"] == 2
    os.rename(tmp_path / "ann.jsonl", tmp_path / "gone.jsonl")
    inputs.run("custom")
    assert _manifest()[0]["paths"]["annotations"]["missing"] is True    # prepare then says what is wrong


def test_generated_datasets_have_an_empty_manifest(workspace):
    workspace()
    assert inputs.run("scenes")["paths"] == {}


def test_dataset_must_be_listed(workspace):
    workspace()
    with pytest.raises(StageError, match="not listed in params.yaml `datasets`"):
        inputs.run("custom")
