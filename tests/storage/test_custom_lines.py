"""The custom JSONL format line by line: no single line can stop prepare, and nothing is lost silently."""
import json
from pathlib import Path

import pytest

from stages import prepare
from stages.common.cli import StageError
from storage.adapters import custom
from storage.adapters.base import DatasetError
from tests.storage.official_layout import image, run


def _section(tmp_path: Path, text: bytes | str, names: tuple[str, ...] = ("a.png",)) -> dict[str, str]:
    root = tmp_path / "root"
    for k, name in enumerate(names):
        image(root / name, seed=k)
    ann = tmp_path / "ann.jsonl"
    ann.write_bytes(text if isinstance(text, bytes) else text.encode())
    return {"root": str(root), "annotations": str(ann)}


def _lines(*objs: object) -> str:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n"


def test_hostile_lines_become_rejects(workspace, tmp_path):
    text = _lines({"image": "a.png", "id": "good"},
                  "[" * 100_000,                                                   # RecursionError in json
                  '{"image": "a.png", "id": "x\\ud800", "captions": ["c"]}',       # lone surrogate in the id
                  '{"image": "a\\ud800.png", "id": "surrogate-path"}',
                  '{"image": "a.png", "id": "q", "questions": [{"question": "bad \\udc00", "answers": ["y"]}]}',
                  '{"image": "a.png", "id": "dupkey", "image": "a.png"}')
    counts, t, why = run(workspace, "custom", _section(tmp_path, text))
    assert [r["image_id"] for r in t["images"]] == ["good", "q"]
    assert why["lines:2"] == "JSON nested too deeply"
    assert why["images:x\\ud800"] == "image_id is not valid Unicode text (a lone surrogate such as \\ud800)"
    assert why["captions:x\\ud800-c0"] == "caption_id is not valid Unicode text (a lone surrogate such as \\ud800)"
    assert why["images:surrogate-path"].startswith("path is not valid Unicode text")
    assert why["vqa:q-q0"].startswith("question is not valid Unicode text")
    assert why["lines:6"] == "duplicate key 'image'"
    assert counts["lines"] == {"given": 6, "accepted": 4, "rejected": 2}


def test_unknown_keys_are_rejected_naming_the_known_ones(workspace, tmp_path):
    text = _lines({"image": "a.png", "id": "typo", "caption": ["one"], "question": []},
                  {"image": "a.png", "id": "qtypo", "questions": [{"question": "what?", "answer": ["cat"]}]},
                  {"image": "a.png", "id": "ok", "captions": ["fine"]})
    counts, t, why = run(workspace, "custom", _section(tmp_path, text))
    assert why["lines:1"] == ("unknown keys 'caption', 'question' (known: image, id, split, captions, questions)")
    assert why["vqa:qtypo-q0"] == "unknown key 'answer' in a question (known: question, answers, answer_type)"
    assert [r["image_id"] for r in t["images"]] == ["qtypo", "ok"]
    assert counts["vqa"] == {"given": 1, "accepted": 0, "rejected": 1}


def test_strict_fails_after_writing_the_outputs(workspace, tmp_path):
    section = _section(tmp_path, _lines({"image": "a.png", "id": "ok"}, "not json"))
    workspace({"datasets": ["custom"], "prepare": {"strict": True, "custom": section}})
    with pytest.raises(StageError, match=r"custom: 1 rejects and prepare.strict is true; see .*rejects.parquet"):
        prepare.run("custom")
    counts = json.loads((tmp_path / "data/prepared/custom/counts.json").read_text())
    assert counts["lines"] == {"given": 2, "accepted": 1, "rejected": 1}
    workspace({"datasets": ["custom"], "prepare": {"custom": section}})   # the default: a WARNING, exit 0
    assert prepare.run("custom")["lines"]["rejected"] == 1


def test_bom_keeps_the_first_record(workspace, tmp_path):
    text = b"\xef\xbb\xbf" + _lines({"image": "a.png", "id": "first"}, {"image": "a.png", "id": "second"}).encode()
    counts, t, _ = run(workspace, "custom", _section(tmp_path, text))
    assert [r["image_id"] for r in t["images"]] == ["first", "second"]
    assert counts["lines"] == {"given": 2, "accepted": 2, "rejected": 0}


def test_only_the_first_bom_is_the_files(workspace, tmp_path):
    text = b"\xef\xbb\xbf\n" + _lines({"image": "a.png", "id": "only"}).encode() + b"\xef\xbb\xbf\n"
    counts, _, why = run(workspace, "custom", _section(tmp_path, text))
    assert counts["lines"] == {"given": 2, "accepted": 1, "rejected": 1}   # a lone BOM line 1 is blank; line 3 not
    assert why["lines:3"].startswith("malformed JSON")


def test_a_single_answer_is_stored_ten_times(workspace, tmp_path):
    text = _lines({"image": "a.png", "id": "one", "questions": [{"question": "what?", "answers": ["cat"]},
                                                               {"question": "and?", "answers": ["cat", "kitten"]}]})
    _, t, _ = run(workspace, "custom", _section(tmp_path, text))
    answers = {r["question_id"]: r["answers"] for r in t["vqa"]}
    assert answers == {"one-q0": ["cat"] * 10, "one-q1": ["cat", "kitten"]}   # 2-9 kept as given (README)


def test_default_ids_do_not_collide(workspace, tmp_path):
    names = ("a b.png", "a_b.png", "a.png", "a.jpg", "sub/a.png")
    text = _lines(*({"image": n} for n in names), {"image": "./a.png"})
    counts, t, why = run(workspace, "custom", _section(tmp_path, text, names))
    assert sorted(r["image_id"] for r in t["images"]) == sorted(names)
    assert why["lines:6"] == "duplicate image id 'a.png'"   # the same file under another spelling


def test_question_types_and_unanswered_test_questions(workspace, tmp_path):
    text = _lines({"image": "a.png", "id": "t", "split": "test",
                   "questions": [{"question": "what is it?"}, {"question": "and this?", "answers": []},
                                 {"question": 42, "answers": ["yes"]}]},
                  {"image": "a.png", "id": "tr", "questions": [{"question": "no answers?"}, {"answers": ["x"]}]})
    counts, t, why = run(workspace, "custom", _section(tmp_path, text))
    vqa = {r["question_id"]: r for r in t["vqa"]}
    assert set(vqa) == {"t-q0", "t-q1"}
    assert (vqa["t-q0"]["answers"], vqa["t-q0"]["answer_type"], vqa["t-q0"]["split"]) == ([], None, "test")
    assert why["vqa:t-q2"] == "question must be a string, got int"
    assert why["vqa:tr-q0"] == "no answers: only a question of split test may be unanswered (answer_type null)"
    assert why["vqa:tr-q1"] == 'missing "question"'


def test_structural_problems_stay_clear_errors(workspace, tmp_path):
    section = _section(tmp_path, "\n \n")
    workspace({"datasets": ["custom"], "prepare": {"custom": section}})
    with pytest.raises(DatasetError, match="has no records"):
        prepare.run("custom")
    with pytest.raises(DatasetError, match="custom annotations file not found or not a regular file"):
        custom.build(section["root"], section["root"], val_fraction=0.0, seed=0)
