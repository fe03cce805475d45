"""Headline metrics as a markdown artifact: the key, the tables, and the stage task's call (`.fn`, no server)."""
import json
import logging
import re
import sys

import pytest
import yaml

import flows.artifacts
from flows.artifacts import artifact_key, headline_markdown, read_headlines
from flows.dag import read_dag
from flows.repro import repro_stage
from tests.flows.conftest import sh

SCORES = {"loss": 1.5, "steps": 3, "scenes": {"acc": 0.25, "r1": 0.125}, "easy_vqa": {"acc": 0.5}}


def test_key_is_lowercase_letters_digits_dashes():
    assert artifact_key("evaluate@vqa") == "metrics-evaluate-vqa"
    assert artifact_key("pretrain_warmup") == "metrics-pretrain-warmup"
    assert artifact_key("sub/dvc.yaml:Train@A") == "metrics-sub-dvc-yaml-train-a"
    assert artifact_key("evaluate@vqa") != artifact_key("evaluate@ve")


def test_markdown_tables_flat_and_per_dataset():
    md = headline_markdown("evaluate@vqa", {"metrics/vqa.json": SCORES | {"nan": None}}, ran=True)
    assert md.startswith("## evaluate@vqa: headline metrics\n\nThe stage ran.\n\n`metrics/vqa.json`\n\n")
    assert "| metric | value |\n| --- | --- |\n| loss | 1.5 |\n| steps | 3 |\n| nan | n/a |\n" in md
    assert ("| dataset | acc | r1 |\n| --- | --- | --- |\n| scenes | 0.25 | 0.125 |\n| easy_vqa | 0.5 |  |\n") in md
    assert "| metric | value |" not in headline_markdown("x", {"m.json": {"scenes": {"acc": 0.25}}}, ran=True)
    assert "| dataset |" not in headline_markdown("x", {"m.json": {"acc": 0.25}}, ran=True)
    assert "| acc | 0.3333 |" in headline_markdown("x", {"m.json": {"acc": 1 / 3}}, ran=False)
    assert "The stage was up to date (not rerun)." in headline_markdown("x", {"m.json": {"acc": 1}}, ran=False)


def test_unreadable_headlines_name_the_file(tmp_path):
    (tmp_path / "words.json").write_text(json.dumps({"acc": "high"}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cut.json").write_text('{"acc": 0.')
    for name, why in [("words.json", "'acc' is str"), ("list.json", ""), ("cut.json", ""), ("none.json", "No such")]:
        with pytest.raises(ValueError, match=f"^headline metrics {name} unreadable: .*{why}"):
            read_headlines(tmp_path, [name])


@pytest.fixture
def scores_project(tmp_path):
    """A DVC project with a foreach stage that writes params.yaml's scores as its headline metrics, and one without
    metrics."""
    root = tmp_path / "project"
    root.mkdir()
    sh([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], root)
    write = ("import json, yaml, pathlib; p = pathlib.Path('metrics/${item}.json'); p.parent.mkdir(exist_ok=True); "
             "p.write_text(json.dumps(yaml.safe_load(open('params.yaml'))['scores']))")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "score": {"foreach": ["a"], "do": {"cmd": f'python -c "{write}"', "params": ["scores"],
                                           "metrics": [{"metrics/${item}.json": {"cache": False}}]}},
        "plain": {"cmd": "python -c \"open('out.txt', 'w').write('x')\"", "outs": ["out.txt"]}}}))
    (root / "params.yaml").write_text(yaml.safe_dump({"scores": SCORES}, sort_keys=False))
    return root


@pytest.fixture
def artifacts(monkeypatch) -> list[dict]:
    """The calls to Prefect's create_markdown_artifact (its API call is the only thing replaced)."""
    calls = []
    monkeypatch.setattr(flows.artifacts, "create_markdown_artifact", lambda **kw: calls.append(kw))
    return calls


def test_stage_task_publishes_its_headline_metrics(scores_project, artifacts, caplog):
    root = scores_project
    dag = read_dag(root)
    assert dag["score@a"].metrics == ("metrics/a.json",) and dag["plain"].metrics == ()
    with caplog.at_level(logging.INFO, logger="flows"):
        assert repro_stage.fn(str(root), "score@a", metrics=dag["score@a"].metrics).ran
        assert repro_stage.fn(str(root), "plain", metrics=dag["plain"].metrics).ran
    [call] = artifacts  # none for `plain`
    assert call["key"] == "metrics-score-a" and re.fullmatch(r"[a-z0-9-]+", call["key"])
    assert call["markdown"] == headline_markdown("score@a", {"metrics/a.json": SCORES}, ran=True)
    assert "plain has no headline metrics (no `metrics:` in dvc.yaml): no artifact" in caplog.text
    assert "headline metrics of score@a published as artifact 'metrics-score-a'" in caplog.text

    (root / "params.yaml").write_text(yaml.safe_dump({"scores": SCORES | {"loss": 0.75}}, sort_keys=False))
    repro_stage.fn(str(root), "score@a", metrics=dag["score@a"].metrics)
    assert "| loss | 0.75 |" in artifacts[1]["markdown"] and "| loss | 1.5 |" not in artifacts[1]["markdown"]
    assert not repro_stage.fn(str(root), "score@a", metrics=dag["score@a"].metrics).ran   # up to date: still shown
    assert artifacts[2]["markdown"] == artifacts[1]["markdown"].replace("ran.", "was up to date (not rerun).")


def test_unreadable_metrics_leave_the_stage_completed(scores_project, artifacts, caplog):
    root = scores_project
    (root / "params.yaml").write_text(yaml.safe_dump({"scores": {"acc": "high"}}))
    with caplog.at_level(logging.WARNING, logger="flows"):
        assert repro_stage.fn(str(root), "score@a", metrics=("metrics/a.json",)).ran
    assert artifacts == []
    assert "no artifact for score@a: headline metrics metrics/a.json unreadable: headline metric 'acc' is str" \
        in caplog.text
