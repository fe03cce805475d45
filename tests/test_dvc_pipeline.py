"""`dvc repro` on a scratch copy of the project: the DAG runs, a param change reruns only what reads it, two
`dvc exp run` variants compare in `dvc exp show`, `dvc metrics diff` and `dvc plots diff`, and adding a dataset
that no consumer lists leaves their selections byte-identical and pretraining up to date."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.common import paths
from tests.conftest import copy_code, rgb, save, tiny_params


def _sh(cmd: list[str], cwd: Path, timeout: float = 600) -> str:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PROGRESS": "0",
                        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A scratch project (tiny params, committed) after one `dvc repro`, and that repro's log: the slow part,
    shared by this module's tests (each copies it before changing anything)."""
    project = tmp_path_factory.mktemp("dvc") / "project"
    copy_code(project)
    (project / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        _sh(["git", *cmd], project)
    return project, _sh([sys.executable, "-m", "dvc", "repro"], project)


@pytest.fixture
def project(reproduced: tuple[Path, str], tmp_path: Path) -> Path:
    """A private copy of the reproduced project (git, DVC cache, lock and data included)."""
    dst = tmp_path / "project"
    shutil.copytree(reproduced[0], dst, symlinks=True)
    return dst


def _changed_stages(project: Path) -> set[str]:
    out = _sh([sys.executable, "-m", "dvc", "status", "--json"], project)
    return {s for s, why in json.loads(out[out.index("{"):]).items() if why != ["always changed"]}


@pytest.mark.slow
def test_repro_param_change_and_experiments(reproduced, project):
    log = reproduced[1]
    for stage in ("prepare@scenes", "segment@scenes", "backbone", "features@scenes"):
        assert f"Running stage '{stage}'" in log
    assert (project / "data/features/scenes/index.parquet").is_file()
    assert (project / "dvc.lock").is_file()
    assert _changed_stages(project) == set()

    original = (project / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["features"]["max_nodes"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert _changed_stages(project) == {"features@scenes"}    # rerunning it is the flow tests' (test_flows)
    (project / "params.yaml").write_text(original)
    assert _changed_stages(project) == set()

    log = _sh([sys.executable, "-m", "dvc", "repro", "-s", "-f", "segment@scenes"], project)
    assert "Running stage 'segment@scenes'" in log and "features@scenes" not in log
    _compare_experiments(project)    # here, to reuse this run: a repro of the DAG is the slow part


def _exp_metrics(shown: list[dict]) -> dict[str, dict]:
    """Each named experiment's metrics files, from `dvc exp show --json`."""
    out = {}
    for row in shown:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                out[rev["name"]] = {path: m["data"] for path, m in rev["data"]["metrics"].items()}
    return out


def _compare_experiments(project: Path) -> None:
    """Two `dvc exp run` variants of a reproduced project: numeric metrics for both, and a metrics diff."""
    _sh(["git", "add", "-A"], project)                      # metrics/ is git-tracked, as DVC's examples keep it
    _sh(["git", "commit", "-qm", "default run"], project)
    for name, lr in (("lr-high", 3e-3), ("lr-low", 3e-4)):   # the backbone stage: seconds, and it has metrics
        log = _sh([sys.executable, "-m", "dvc", "exp", "run", "-n", name, "-S", f"backbone.lr={lr}", "backbone"],
                  project)
        assert "Running stage 'backbone'" in log and "Running stage 'features@scenes'" not in log
    out = _sh([sys.executable, "-m", "dvc", "exp", "show", "--json"], project)
    shown = _exp_metrics(json.loads(out[out.index("["):]))
    assert set(shown) >= {"lr-high", "lr-low"}
    for name in ("lr-high", "lr-low"):
        assert shown[name]["metrics/backbone.json"] and all(
            isinstance(v, (int, float)) for v in shown[name]["metrics/backbone.json"].values())
        for stage in ("pretrain", "reorder", "vqa", "ve", "nlvr2", "itr"):   # the run's other metrics ride along
            assert shown[name][f"metrics/{stage}.json"], stage
    diff = _sh([sys.executable, "-m", "dvc", "metrics", "diff", "lr-high", "lr-low", "--json"], project)
    assert "loss" in json.loads(diff[diff.index("{"):])["metrics/backbone.json"]
    _compare_plots(project)


def _compare_plots(project: Path) -> None:
    """Every figure of dvc.yaml resolves for both experiments from their git-tracked plots/ copies (only the
    default run's second VQA dataset, which the tiny params leave out, is missing); the backbone's curves differ."""
    out = _sh([sys.executable, "-m", "dvc", "plots", "diff", "lr-high", "lr-low", "--json"], project)
    shown = json.JSONDecoder().raw_decode(out, out.index("{"))[0]     # DVC's warning about the missing files follows
    assert all("easy_vqa" in e["source"] for e in shown.get("errors") or []), shown["errors"]
    figures = {name: [v for r in renders for v in r["content"]["data"]["values"]]
               for name, renders in shown["data"].items()}
    assert set(figures) == {"backbone loss", "pretraining loss", "finetuning loss", "finetuning accuracy",
                            "finetuning val accuracy", "retrieval val recall"}
    for name, values in figures.items():
        assert {v["rev"] for v in values} == {"lr-high", "lr-low"}, name
    backbone = {rev: [v["loss"] for v in figures["backbone loss"] if v["rev"] == rev] for rev in ("lr-high", "lr-low")}
    assert backbone["lr-high"] and backbone["lr-high"] != backbone["lr-low"]
    steps: dict[tuple[str, str], list[int]] = {}
    for v in figures["pretraining loss"]:
        phase = "warmup" if v["filename"].endswith("pretrain_warmup.tsv") else "main"
        steps.setdefault((v["rev"], phase), []).append(int(v["step"]))
    for rev in ("lr-high", "lr-low"):                 # one step axis: main's steps after the warm-up's
        assert max(steps[rev, "warmup"]) < min(steps[rev, "main"])


CONSUMERS = ("pretrain", "vqa", "report")           # the other tasks' selections work as vqa's
SELECTS = [f"select@{c}" for c in CONSUMERS]


def _custom(root: Path) -> dict:
    """A user's folder of three captioned images and its prepare.custom section."""
    for i in range(3):
        save(root / "photos" / f"{i}.png", rgb(32, 32, seed=i))
    ann = root / "ann.jsonl"
    ann.write_text("".join(json.dumps({"image": f"{i}.png", "captions": [f"photo {i}"]}) + "\n" for i in range(3)))
    return {"root": str(root / "photos"), "annotations": str(ann)}


def _selections(project: Path) -> dict[str, bytes]:
    return {c: (project / paths.selection(c)).read_bytes() for c in CONSUMERS}


@pytest.mark.slow
def test_adding_a_dataset_nothing_reads_leaves_pretraining_up_to_date(project, tmp_path):
    before = _selections(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"] = ["scenes", "custom"]
    params["prepare"]["custom"] |= _custom(tmp_path)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    log = _sh([sys.executable, "-m", "dvc", "repro", *SELECTS], project)   # custom's stages and digest, then these
    for stage in ("features@custom", "digest@custom", *SELECTS):
        assert f"Running stage '{stage}'" in log, stage
    assert _selections(project) == before     # custom is in no consumer's lists: the same bytes
    assert "pretrain_warmup" not in _changed_stages(project)

    params["pretrain"]["datasets"] = ["scenes", "custom"]   # now pretraining reads it
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    log = _sh([sys.executable, "-m", "dvc", "repro", *SELECTS], project)
    assert "Running stage 'digest@" not in log                  # no dataset changed
    after = _selections(project)
    assert after["pretrain"] != before["pretrain"] and after["vqa"] == before["vqa"]
    out = _sh([sys.executable, "-m", "dvc", "status", "--json", "pretrain_warmup"], project)
    [why] = json.loads(out[out.index("{"):])["pretrain_warmup"]      # besides params.yaml's `pretrain`
    assert why["changed deps"][str(paths.selection("pretrain"))] == "modified"



@pytest.mark.slow
def test_study_runs_a_table_as_queued_experiments_and_collects_it(project):
    _sh(["git", "add", "-A"], project)                      # the run's metrics/ are the committed baseline's
    _sh(["git", "commit", "-qm", "default run"], project)
    study = [sys.executable, "-m", "stages.study", "--tables", "control", "--seeds", "1", "--budget", "itr",
             "--jobs", "1"]
    log = _sh(study, project, timeout=1200)                 # one queued experiment: retrieval's two stages
    assert "2 experiment(s) planned, 1 already run, 1 to run" in log     # the commit itself is the gshn row
    result = json.loads((project / "data/study/control.json").read_text())
    pretrained, random_init = result["rows"]
    head = _sh(["git", "rev-parse", "HEAD"], project).strip()
    assert pretrained["runs"][0]["rev"] == head[:7]
    assert random_init["runs"][0]["experiment"] == "control-random-init-s0" and not random_init["runs"][0]["error"]
    for row in (pretrained, random_init):
        assert row["values"]["R-sum"]["n"] == 1 and "mean" not in row["values"]["VQA acc"]   # not a target
    recall = ("TR R@1", "IR R@1", "R-sum")                # 8 test images: one of them may tie
    assert any(random_init["values"][c]["seeds"] != pretrained["values"][c]["seeds"] for c in recall)
    assert result["missing"] == [] and "control" in (project / "data/study/index.html").read_text()
    assert "2 already run, 0 to run" in _sh(study, project)             # found again: nothing reruns
