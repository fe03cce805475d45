"""Shared helpers of the official-format adapters: streaming JSON with bad bytes, and clear errors."""
import pytest

from storage.adapters import official
from storage.adapters.base import DatasetError


def test_stream_replaces_bad_bytes_across_read_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(official, "READ_SIZE", 3)   # multi-byte characters straddle the reads
    path = tmp_path / "x.json"
    path.write_bytes('{"questions": [{"q": "café ☕"}, {"q": "bad '.encode() + b"\xe9\xff" + b' byte"}, {"q": "ok"}]}')
    got = list(official.stream_json(path, "questions.item"))
    assert got == [{"q": "café ☕"}, {"q": "bad \ufffd\ufffd byte"}, {"q": "ok"}]
    assert official.text_problem(got[1], ("q",)) == official.NOT_UTF8
    assert official.text_problem(got[0], ("q", "a")) == "missing field 'a'"
    assert official.text_problem(["a list"], ("q",)) == "record is not a JSON object"


def test_stream_pairs_and_invalid_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"1": {"a": 1.5}, "2": {"a": 2}}')
    assert list(official.stream_json_pairs(path)) == [("1", {"a": 1.5}), ("2", {"a": 2})]
    path.write_text('{"1": {"a": 1.5}, "2": ')
    with pytest.raises(DatasetError, match=r"x\.json: not valid JSON: parse error: premature EOF"):
        list(official.stream_json_pairs(path))


def test_infer_answer_type():
    assert official.infer_answer_type(["Yes", "no"]) == "yes/no"
    assert official.infer_answer_type(["2", "3"]) == "number"
    assert official.infer_answer_type(["2", "two"]) == "other"
    assert official.infer_answer_type([]) == "other"
