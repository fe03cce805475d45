import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.atomic import atomic_open, clean_temporaries
from storage.rejects import Rejects, read_all
from storage.tables import TableError, read_table, write_table


def test_roundtrip_and_schema_checks(tmp_path):
    rows = [{"question_id": "q1", "image_id": "i1", "question": "what?", "answers": ["a"] * 10,
             "answer_type": "other", "split": "train"}]
    assert write_table(tmp_path / "vqa.parquet", "vqa", rows) == 1
    assert read_table(tmp_path / "vqa.parquet", "vqa").to_pylist() == [rows[0] | {"subset": None}]
    with pytest.raises(TableError, match="missing field 'split'"):
        write_table(tmp_path / "x.parquet", "captions", [{"caption_id": "c", "image_id": "i", "text": "t"}])
    with pytest.raises(TableError, match="columns"):
        read_table(tmp_path / "vqa.parquet", "captions")
    with pytest.raises(FileNotFoundError, match="run the stage"):
        read_table(tmp_path / "none.parquet", "images")


def test_tables_written_before_subset_existed_still_read(tmp_path):
    old = pa.table({"image_id": ["i"], "path": ["p.png"], "width": pa.array([4], pa.int32()),
                    "height": pa.array([3], pa.int32()), "split": ["train"]})
    pq.write_table(old, tmp_path / "images.parquet")
    assert read_table(tmp_path / "images.parquet", "images").to_pylist() == [
        {"image_id": "i", "path": "p.png", "width": 4, "height": 3, "split": "train", "sha256": None,
         "subset": None}]


def test_atomic_write_leaves_target_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write("new")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert clean_temporaries(tmp_path) == 0  # the failed write cleaned up after itself


def test_rejects_gathered_across_stages(tmp_path):
    for stage in ("prepare", "segment"):
        r = Rejects(stage)
        r.add("images:x", "undecodable: bad")
        r.write(tmp_path / stage / "rejects.parquet")
    t = read_all(tmp_path)
    assert t.num_rows == 2 and sorted(t.column("source").to_pylist()) == ["prepare", "segment"]
    assert pq.read_table(tmp_path / "prepare" / "rejects.parquet").num_rows == 1


def test_reject_rows_are_always_writable(tmp_path):
    """Untrusted text in an item or reason (a lone surrogate, a huge line) is escaped and capped, not a crash."""
    r = Rejects("prepare")
    r.add("lines:1", "bad id 'x\ud800'")
    r.add("images:\udc80", "y" * 10_000)
    r.write(tmp_path / "rejects.parquet")
    rows = pq.read_table(tmp_path / "rejects.parquet").to_pylist()
    assert rows[0]["reason"] == "bad id 'x\\ud800'" and rows[1]["item"] == "images:\\udc80"
    assert len(rows[1]["reason"]) <= 1000 and rows[1]["reason"].endswith("... (10000 characters)")
