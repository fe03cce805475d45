"""digest@<dataset> and select@<consumer>: a consumer's selection changes exactly when a dataset it reads does."""
import json
import logging

import pytest

from stages import digest, select
from stages.common import paths
from stages.common.cli import StageError

PARAMS = {"datasets": ["scenes", "easy_vqa"], "pretrain": {"datasets": ["scenes"]},
          "finetune": {"vqa": {"datasets": ["scenes", "easy_vqa"]}}}


def _dataset(name: str) -> None:
    """Folders as prepare, segment and features leave them (a table, a shard, its index)."""
    for folder, files in ((paths.prepared(name), {"captions.parquet": b"c", "images/0.png": b"i"}),
                          (paths.masks(name), {"masks-000000.tar": b"m", "index.parquet": b"x"}),
                          (paths.features(name), {"nodes-000000.tar": b"n" * 8, "meta.json": b"{}"})):
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data + name.encode())


@pytest.fixture
def built(workspace):
    workspace(PARAMS)
    for ds in PARAMS["datasets"]:
        _dataset(ds)
        digest.run(ds)
    for consumer in paths.CONSUMERS:
        select.run(consumer)


def _selections() -> dict[str, bytes]:
    return {c: paths.selection(c).read_bytes() for c in paths.CONSUMERS}


def _change(path, data: bytes) -> None:
    """Rewrite a file the way its stage would, then refresh that dataset's digest and every selection (as DVC)."""
    path.write_bytes(data)
    digest.run(path.relative_to(paths.DATA).parts[1])
    for consumer in paths.CONSUMERS:
        select.run(consumer)


def test_selection_lists_only_what_the_consumer_reads(built):
    pretrain = json.loads(paths.selection("pretrain").read_text())
    assert pretrain["consumer"] == "pretrain" and list(pretrain["datasets"]) == ["scenes"]
    assert pretrain["datasets"]["scenes"] == {k: v for k, v in json.loads(paths.dataset_digest("scenes").read_text())
                                              .items() if k in ("features", "prepared")}
    assert list(json.loads(paths.selection("vqa").read_text())["datasets"]) == ["easy_vqa", "scenes"]
    report = json.loads(paths.selection("report").read_text())["datasets"]
    assert {ds: sorted(parts) for ds, parts in report.items()} == {          # overlays of every task's dataset
        "easy_vqa": ["masks", "prepared"], "scenes": ["features", "masks", "prepared"]}


def test_unlisted_dataset_change_leaves_the_selection_byte_identical(built):
    before = _selections()
    _change(paths.features("easy_vqa") / "nodes-000000.tar", b"N" * 8)   # same size, other content
    after = _selections()
    assert after["pretrain"] == before["pretrain"] and after["ve"] == before["ve"]
    assert after["vqa"] != before["vqa"] and after["report"] == before["report"]   # report shows masks of easy_vqa


def test_listed_dataset_change_changes_the_selection(built):
    before = _selections()
    _change(paths.features("scenes") / "nodes-000000.tar", b"N" * 8)
    after = _selections()
    assert all(after[c] != before[c] for c in paths.CONSUMERS)            # scenes: read by every consumer
    before = after
    _change(paths.masks("scenes") / "masks-000000.tar", b"M")           # masks: the report's overlays only
    assert {c for c, b in _selections().items() if b != before[c]} == {"report"}


def test_digest_covers_paths_and_content(tmp_path):
    folder = tmp_path / "f"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.bin").write_bytes(b"1")
    first = digest.folder_digest(folder)
    assert digest.folder_digest(folder) == first
    (folder / "a" / "x.bin").rename(folder / "a" / "y.bin")
    renamed = digest.folder_digest(folder)
    (folder / "a" / "y.bin").write_bytes(b"2")
    assert len({first, renamed, digest.folder_digest(folder)}) == 3


def test_missing_inputs_name_the_stage_to_run(workspace, caplog):
    workspace(PARAMS)
    _dataset("scenes")
    digest.run("scenes")
    with pytest.raises(StageError, match=r"data/digests/easy_vqa.json not found: run `dvc repro digest@easy_vqa`"):
        select.run("vqa")
    select.run("pretrain")                                              # reads scenes only
    with pytest.raises(StageError, match=r"data/prepared/easy_vqa not found: run `dvc repro prepare@easy_vqa`"):
        digest.run("easy_vqa")
    workspace(PARAMS | {"pretrain": {"datasets": ["scenes", "custom"]}})
    caplog.set_level(logging.ERROR)
    with pytest.raises(SystemExit) as e:
        select.main(["--consumer", "pretrain"])
    assert e.value.code == 2
    assert ("select@pretrain failed: pretrain.datasets lists ['custom'], which params.yaml `datasets` does not "
            "prepare: add them there") in caplog.text


@pytest.mark.parametrize("text", ["{not json", '["features"]', '{"prepared": "ab"}', '{"prepared": 1, "features": 2}'])
def test_damaged_digest_file_is_a_clear_error(built, text):
    paths.dataset_digest("scenes").write_text(text)
    with pytest.raises(StageError, match=r"data/digests/scenes.json is not what digest@scenes writes .*"
                                         r"run `dvc repro -f digest@scenes`"):
        select.run("pretrain")
