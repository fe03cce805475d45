"""The study: rows x seeds -> experiments, runs found by their params in `dvc exp show --json`, the
statistics and verdicts, and the command's outputs and errors (on hand-written exp-show documents)."""
import copy
import json

import pytest

from stages import study
from stages.studies import stats
from stages.studies.collect import expected_params, match
from stages.studies.plan import BUDGETS, SEED_KEYS, experiments, parse_override
from stages.studies.results import table_result
from stages.studies.tables import Column, Row, Table

BASE = {"model": {"preset": "gshn"}, "pretrain": {"seed": 0, "main": {"epochs": 2}},
        "finetune": {"seed": 0, "init": "pretrained", "vqa": {"datasets": ["scenes", "easy_vqa"]}}}
BUDGET = BUDGETS["default"]
COLS = (Column("VQA", "scenes.vqa_acc"), Column("TR", "scenes.i2t_r1"))
T5 = Table("t5", "four states", COLS, (Row("GSHN", ("model.preset=gshn",), {"VQA": 73.39, "TR": 88.12}),
                                        Row("GAT", ("model.preset=zero_r",), {"VQA": 61.08, "TR": 85.0}),
                                        Row("SNN", ("model.preset=snn_only",), {"VQA": 55.51, "TR": None})))
CTRL = Table("control", "no pretraining", COLS[:1], (Row("pretrained", ("model.preset=gshn",)),
                                                      Row("random init", ("finetune.init=random",))))


def _with(params: dict, overrides: tuple[str, ...]) -> dict:
    out = copy.deepcopy(params)
    for o in overrides:
        key, value = parse_override(o)
        *path, last = key.split(".")
        node = out
        for k in path:
            node = node.setdefault(k, {})
        node[last] = value
    return out


def _rev(sha: str, name: str | None, params: dict, vqa: float, tr: float, error=None) -> dict:
    return {"rev": sha, "name": name, "error": error, "experiments": None,
            "data": {"rev": sha, "timestamp": "2026-12-01T00:00:00", "params": {"params.yaml": {"data": params}},
                     "metrics": {"metrics/vqa.json": {"data": {"scenes": {"vqa_acc": vqa}}},
                                 "metrics/itr.json": {"data": {"scenes": {"i2t_r1": tr}}}}}}


def _doc(results: dict[tuple[str, int], tuple[float, float]], extra: list | None = None) -> list:
    """A commit with BASE params and one experiment per (preset, seed) -> (vqa, tr)."""
    exps = []
    for i, ((preset, seed), (vqa, tr)) in enumerate(results.items()):
        over = (f"model.preset={preset}", *(f"{k}={seed}" for k in SEED_KEYS))
        exps.append({"name": f"e{i}", "executor": None,
                     "revs": [_rev(f"{i:040x}", f"e{i}", _with(BASE, over), vqa, tr)]})
    commit = _rev("f" * 40, "main", BASE, 0.1, 0.1) | {"experiments": exps + (extra or [])}
    return [_rev("workspace", None, BASE, 0.0, 0.0), commit]


def test_rows_shared_by_tables_run_once_per_seed_seed_major():
    planned = experiments([T5, CTRL], 2, BUDGETS["cpu"])
    assert len(planned) == 2 * 4                              # GSHN is in both tables
    assert [e.seed for e in planned] == [0] * 4 + [1] * 4
    gshn = planned[0]
    assert gshn.tables == ("t5", "control") and gshn.name == "t5-gshn-s0"
    assert gshn.overrides[:len(BUDGETS["cpu"].overrides)] == BUDGETS["cpu"].overrides
    assert gshn.overrides[-2:] == ("pretrain.seed=0", "finetune.seed=0")
    assert len({e.name for e in planned}) == len(planned)


def test_overrides_replace_values_and_lists_as_dvc_does():
    base = {"finetune.vqa.datasets": '["scenes", "easy_vqa"]', "model.preset": "gshn", "pretrain.seed": "0"}
    got = expected_params(base, ("finetune.vqa.datasets=[scenes]", "pretrain.seed=2", "model.preset=ash"))
    assert got == {"finetune.vqa.datasets": '["scenes"]', "model.preset": "ash", "pretrain.seed": "2"}
    with pytest.raises(ValueError, match="not key=value"):
        parse_override("model.preset")


def test_runs_are_found_by_every_param_not_by_name():
    planned = experiments([T5], 2, BUDGET)
    doc = _doc({("gshn", 0): (0.5, 0.6), ("zero_r", 0): (0.4, 0.5), ("gshn", 1): (0.52, 0.61)})
    stray = _with(BASE, ("model.preset=snn_only", "pretrain.seed=0", "finetune.seed=0", "pretrain.main.epochs=1"))
    doc[1]["experiments"].append({"name": "x", "executor": None, "revs": [_rev("a" * 40, "x", stray, 0.9, 0.9)]})
    runs, missing = match(doc, planned)
    assert {(r.experiment.row, r.experiment.seed) for r in runs} == {("GSHN", 0), ("GAT", 0), ("GSHN", 1)}
    assert {(e.row, e.seed) for e in missing} == {("SNN", 0), ("GAT", 1), ("SNN", 1)}   # the stray differs
    assert next(r for r in runs if r.experiment.row == "GAT").row.metrics["scenes.vqa_acc"] == 0.4


def test_a_commit_whose_params_are_the_row_counts_and_a_finished_run_beats_a_failed_one():
    [gshn0] = [e for e in experiments([T5], 1, BUDGET) if e.row == "GSHN"]
    doc = _doc({})
    runs, _ = match(doc, [gshn0])
    assert runs[0].row.rev == "fffffff"                   # BASE is gshn with seed 0
    failed = _rev("b" * 40, "bad", BASE, 0.0, 0.0, error={"type": "ReproductionError", "msg": "boom"})
    doc[1]["experiments"] = [{"name": "bad", "executor": None, "revs": [failed]}]
    assert match(doc, [gshn0])[0][0].row.rev == "fffffff"


def test_mean_sd_bootstrap_and_verdicts():
    s = stats.summarize([0.5, 0.6, 0.7])
    assert s.n == 3 and s.mean == pytest.approx(0.6) and s.sd == pytest.approx(0.1)
    assert 0.5 <= s.lo < s.mean < s.hi <= 0.7
    assert stats.summarize([]) is None and stats.summarize([0.4]).sd == 0.0
    assert stats.verdict([0.1, 0.12, 0.09], 5.0) == "agrees"
    assert stats.verdict([0.1, 0.12, 0.09], -5.0) == "opposite"
    assert stats.verdict([0.1, -0.02, 0.09], 5.0) == "within noise"       # signs disagree across seeds
    assert stats.verdict([0.1], 5.0) == "within noise"                     # one seed is no evidence
    assert stats.verdict([0.1, 0.1], None) == "no paper number"


def test_a_table_result_pairs_seeds_and_compares_with_the_reference():
    planned = experiments([T5], 3, BUDGET)
    doc = _doc({("gshn", s): (0.60 + s / 100, 0.7) for s in range(3)}
               | {("zero_r", s): (0.50 + s / 100, 0.7 + s / 100) for s in range(3)}
               | {("snn_only", s): (0.40, 0.5) for s in range(2)})
    res = table_result(T5, match(doc, planned)[0])
    gshn, gat, snn = res["rows"]
    assert gshn["values"]["VQA"]["seeds"] == {0: 0.60, 1: 0.61, 2: 0.62} and gshn["values"]["VQA"]["paper"] == 73.39
    assert snn["values"]["VQA"]["n"] == 2
    by = {(c["row"], c["column"]): c for c in res["comparisons"]}
    assert by["GAT", "VQA"]["ours"]["mean"] == pytest.approx(-0.10)
    assert by["GAT", "VQA"]["verdict"] == "agrees"                          # paper: 61.08 < 73.39
    assert by["GAT", "TR"]["verdict"] == "within noise"                    # 0, +0.01, +0.02
    assert by["SNN", "TR"]["verdict"] == "no paper number"
    assert by["SNN", "VQA"]["seeds"] == [0, 1]


def test_the_command_writes_each_table_and_the_page(tmp_path):
    doc = _doc({("gshn", s): (0.6, 0.7) for s in range(2)} | {("zero_r", s): (0.5, 0.6) for s in range(2)})
    results = study.collect([T5], experiments([T5], 2, BUDGET), BUDGET, doc, tmp_path / "out")
    assert results[0]["missing"] == ["t5-snn-s0", "t5-snn-s1"]
    assert json.loads((tmp_path / "out/t5.json").read_text())["rows"][1]["values"]["VQA"]["mean"] == 0.5
    md = (tmp_path / "out/t5.md").read_text()
    assert "0.600 ± 0.000" in md and "agrees" in md and "not run yet: t5-snn-s0" in md
    assert "Reproducing the papers&#x27; ablations</h1>" in (tmp_path / "out/index.html").read_text()


def test_list_names_every_row_with_its_overrides():
    lines = study.list_lines([T5])
    assert lines[0] == "t5: four states"
    assert lines[1] == "  GSHN (reference): -S model.preset=gshn" and lines[2] == "  GAT: -S model.preset=zero_r"


@pytest.mark.parametrize(("argv", "message"), [
    (["--tables", "gshn-table99", "--list"], "gshn-table99"),
    (["--collect", "--from", "missing.json", "--tables", "control"], "missing.json"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        study.main(argv)
    assert e.value.code == 2 and message in caplog.text


def test_a_saved_document_that_is_not_exp_show_is_refused(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text('{"rev": 1}')
    with pytest.raises(SystemExit) as e:
        study.main(["--collect", "--from", "bad.json", "--tables", "control"])
    assert e.value.code == 2 and "cannot read the experiments" in caplog.text


def test_a_row_needing_a_users_file_is_named_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    vit = Row("ViT", ("features.backbone=vit_b_16", "features.weights=weights/vit.pth"))
    r101 = Row("R101", ("features.backbone=resnet101", "features.weights=data/backbone/resnet101.pt"))
    exps = experiments([Table("t13", "backbones", COLS, (vit, r101))], 1, BUDGET)
    assert [study.missing_files(e) for e in exps] == [["weights/vit.pth"], []]   # data/: the pipeline's own
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights/vit.pth").write_bytes(b"x")
    assert study.missing_files(exps[0]) == []


def test_the_reports_section_shows_each_collected_table_or_how_to_collect_one(tmp_path):
    from stages.studies.render import report_section
    assert "python -m stages.study" in report_section(tmp_path / "none")[1][1]
    doc = _doc({("gshn", 0): (0.6, 0.7), ("zero_r", 0): (0.5, 0.6)})
    study.collect([T5], experiments([T5], 1, BUDGET), BUDGET, doc, tmp_path / "study")
    blocks = report_section(tmp_path / "study")
    assert blocks[0] == ("h2", "Reproducing the papers' ablations") and blocks[1] == ("h3", "t5: four states")
    assert any(b[0] == "table" and b[1][0] == "row" and b[2][1][0] == "GAT" for b in blocks)


def test_a_speed_table_gives_time_and_memory_as_ratios_to_its_first_row():
    speed = Table("t7", "speed", (Column("time", "pretrain:seconds_per_epoch", "lower"),), T5.rows[:2], speed=True)
    doc = _doc({("gshn", 0): (0.6, 0.7), ("zero_r", 0): (0.5, 0.6)})
    for exp in doc[1]["experiments"]:
        rev = exp["revs"][0]["data"]
        seconds = 100.0 if rev["params"]["params.yaml"]["data"]["model"]["preset"] == "gshn" else 150.0
        rev["metrics"]["metrics/pretrain.json"] = {"data": {"seconds_per_epoch": seconds}}
        rev["metrics"]["metrics/pretrain_warmup.json"] = {"data": {"seconds_per_epoch": 1.0}}
    res = table_result(speed, match(doc, experiments([speed], 1, BUDGET))[0])
    assert [r["values"]["time"]["ratio_to_first"] for r in res["rows"]] == [1.0, 1.5]


def test_a_task_outside_the_budgets_targets_is_not_read_from_a_run():
    """`--budget itr` reruns retrieval only: an experiment's metrics/vqa.json is its commit's, not its own."""
    doc = _doc({("gshn", 0): (0.60, 0.7), ("zero_r", 0): (0.50, 0.6)})
    for budget, vqa in ((BUDGETS["itr"], {}), (BUDGET, {0: 0.60})):
        res = table_result(T5, match(doc, experiments([T5], 1, budget))[0])
        gshn = res["rows"][0]["values"]
        assert gshn["VQA"]["seeds"] == vqa and gshn["TR"]["seeds"] == {0: 0.7}
