"""`python -m stages.compare` on a hand-written `dvc exp show --json` document (DVC 3 layout)."""
import json

import pytest

from stages import compare
from stages.common.cli import StageError
from stages.reporting.experiments import ExpShowError, differing_params, parse, table


def _rev(rev, name, params, metrics, error=None):
    return {"rev": rev, "name": name, "error": error, "experiments": None,
            "data": {"rev": rev, "timestamp": None if rev == "workspace" else "2026-11-30T18:19:33",
                     "params": {"params.yaml": {"data": params}},
                     "metrics": {f: {"data": d} for f, d in metrics.items()}, "deps": {}, "outs": {}, "meta": {}}}


def _metrics(acc, r1):
    return {"metrics/vqa.json": {"scenes": {"vqa_acc": acc, "vqa_blind": 0.3}},
            "metrics/pretrain.json": {"itc_r1_i2t": r1},
            "data/evaluate/vqa/metrics.json": {"scenes": {"model": acc}}}     # not a headline file


BASE = {"model": {"preset": "gshn", "T": 4}, "finetune": {"lr": 0.001, "vqa": {"datasets": ["scenes"]}}}
DOC = [
    _rev("workspace", None, BASE, _metrics(0.55, 0.1)),
    _rev("e856c08d9747d090cc28104f5577bf1a44016a71", "main", BASE, _metrics(0.54, 0.1)) | {"experiments": [
        {"name": "ash", "executor": None, "revs": [_rev("d940f4a7162b71b895892a92fda278fb6f719e71", "ash",
                                                        BASE | {"model": {"preset": "ash", "T": 4}},
                                                        _metrics(0.58, 0.2))]},
        {"name": "t8", "executor": None, "revs": [_rev("c4f2619fa7025f185c4536b900204194ee64145d", None,
                                                       BASE | {"model": {"preset": "gshn", "T": 8}},
                                                       _metrics(0.5, 0.1))]}]},
]


def test_one_row_per_commit_and_experiment_with_the_params_that_differ():
    rows = parse(DOC)
    assert [(r.name, r.rev) for r in rows] == [("workspace", ""), ("main", "e856c08"), ("ash", "d940f4a"),
                                               ("t8", "c4f2619")]
    assert differing_params(rows) == ["model.preset", "model.T"]
    header, body, same = table(rows)
    assert header == ["experiment", "rev", "created", "model.preset", "model.T", "scenes.vqa_acc",
                      "scenes.vqa_blind", "itc_r1_i2t"]
    assert body[2] == ["ash", "d940f4a", "2026-11-30T18:19:33", "ash", "4", "0.5800", "0.3000", "0.2000"]
    assert body[3][3:5] == ["gshn", "8"] and same == 2       # finetune.lr and finetune.vqa.datasets are equal


def test_a_key_two_headline_files_share_is_prefixed_and_errors_are_shown():
    doc = [_rev("abc1234", None, BASE, {"metrics/ve.json": {"acc": 0.5}, "metrics/nlvr2.json": {"acc": 0.6}},
                error={"type": "FileNotFoundError", "msg": "metrics/ve.json"})]
    header, body, _ = table(parse(doc))
    assert header[-3:] == ["ve:acc", "nlvr2:acc", "error"]
    assert body[0][0] == "abc1234" and body[0][-1] == "FileNotFoundError: metrics/ve.json"


@pytest.mark.parametrize(("doc", "message"), [
    ({"rev": "x"}, "expected a JSON list"),
    ([], "no revisions"),
    ([{"name": "x"}], "not a revision with a `rev`"),
    ([_rev("a", None, {}, {}) | {"experiments": {}}], "`experiments` is not a list"),
    ([_rev("a", None, {}, {}) | {"data": {"params": ["x"]}}], "`params` is not a mapping"),
])
def test_bad_documents_are_named(doc, message):
    with pytest.raises(ExpShowError, match=message):
        parse(doc)


def test_command_writes_the_page_from_a_saved_file(tmp_path):
    src = tmp_path / "exps.json"
    src.write_text(json.dumps(DOC))
    compare.main(["--from", str(src), "--out", str(tmp_path / "out")])
    page = (tmp_path / "out" / "compare.html").read_text()
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "<td>ash</td>" in page and "<th>model.preset</th>" in page and "0.5800" in page
    assert "| t8 | c4f2619 |" in md and "(not shown: 2 equal in every row)" in md


@pytest.mark.parametrize(("text", "message"), [("{oops", "is not JSON"), ('{"a": 1}', "is not `dvc exp show")])
def test_unusable_json_is_one_line_and_exit_2(tmp_path, caplog, text, message):
    src = tmp_path / "exps.json"
    src.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--from", str(src), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and message in caplog.text and not (tmp_path / "out").exists()
    with pytest.raises(StageError, match="no such file"):
        compare.run(tmp_path / "missing.json", False, tmp_path / "out")


def test_dvc_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                     # not a DVC repository
    with pytest.raises(StageError, match=r"`dvc exp show --json` failed: .*"):
        compare.exp_show(False)
