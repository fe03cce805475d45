"""finetune -> evaluate -> report on a tiny workspace, and their refusals of bad inputs."""
import json
import shutil

import pytest
import torch
import yaml

from stages import evaluate, features, finetune, prepare, report, segment
from stages.cli import StageError
from stages.modelcfg import build_model
from stages.pairs import feature_meta
from stages import params

pytestmark = pytest.mark.usefixtures("one_thread")
MODEL = {"model": {"T": 2, "M": 32}}


def _workspace(workspace, overrides=None):
    """Tiny scenes features, and a pretrain checkpoint: the seeded initial weights of the preset
    (finetuning mechanics do not need a pretrained model)."""
    cfg = workspace(MODEL | (overrides or {}))
    prepare.run("scenes"), segment.run("scenes"), features.run("scenes")
    torch.manual_seed(0)
    model = build_model(params.load("model"), *feature_meta(["scenes"]), 2)
    finetune.PRETRAINED.parent.mkdir(parents=True)
    torch.save(model.state_dict(), finetune.PRETRAINED)
    return cfg


def _set(tmp_path, **sections):
    cfg = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for name, value in sections.items():
        cfg[name] = cfg.get(name, {}) | value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))


@pytest.mark.slow
def test_all_tasks_end_to_end(workspace, tmp_path):
    _workspace(workspace)
    for task in finetune.TASKS:
        finetune.run(task)
        evaluate.run(task)
    vqa = json.loads((tmp_path / "data/metrics/vqa.json").read_text())["scenes"]
    rows = [json.loads(line) for line in (tmp_path / "data/evaluate/vqa/scenes/predictions.jsonl").open()]
    assert vqa["counts"]["evaluated"] == len(rows) == 8 * 2      # 8 test images x 2 questions, none skipped
    assert vqa["counts"]["missing_features"] == 0
    assert 0 <= vqa["model"] <= 1 and 0 <= vqa["blind"] <= 1
    assert set(vqa["per_answer_type"]) <= {"yes/no", "number", "other"}
    assert vqa["margin_over_blind"] == pytest.approx(vqa["model"] - vqa["blind"])
    meta = json.loads((tmp_path / "data/finetune/vqa/scenes/meta.json").read_text())
    assert meta["answers"] and meta["preset"] == "gshn"
    ve = json.loads((tmp_path / "data/metrics/ve.json").read_text())["scenes"]
    assert set(ve["per_label"]) <= {"entailment", "neutral", "contradiction"}
    itr = json.loads((tmp_path / "data/metrics/itr.json").read_text())["scenes"]
    assert itr["counts"] == {"images": 8, "captions": 40, "missing_features": 0}
    assert itr["chance"]["t2i_r1"] == pytest.approx(1 / 8)
    for ranking in ("itc", "itm_rerank"):  # recall grows with K
        assert itr[ranking]["i2t_r1"] <= itr[ranking]["i2t_r5"] <= itr[ranking]["i2t_r10"]
        assert itr[ranking]["t2i_r10"] == 1.0   # only 8 images to rank
    ranks = [json.loads(line) for line in (tmp_path / "data/evaluate/itr/scenes/t2i_ranks.jsonl").open()]
    assert len(ranks) == 40 and all(len(r["ranked"]) == 8 for r in ranks)

    summary = report.run()
    for task in finetune.TASKS:
        assert task in summary
    page = (tmp_path / "data/report/index.html").read_text()
    assert page.count("data:image/png;base64,") >= 8 and 'src="figures' not in page   # self-contained
    md = (tmp_path / "data/report/report.md").read_text()
    assert "![" in md and all((tmp_path / "data/report" / p).is_file()
                              for p in [line.split("](")[1].rstrip(")") for line in md.splitlines()
                                        if line.startswith("![")])


def test_parallel_trainings_equal_serial_ones(workspace, tmp_path):
    """finetune.workers runs the model and the blind baseline in two processes: same weights, same meta."""
    _workspace(workspace)
    root = tmp_path / "data/finetune/ve/scenes"
    finetune.run("ve")
    serial = {v: torch.load(root / v / "model.pt") for v in ("model", "blind")}
    serial_meta = (root / "meta.json").read_text()
    shutil.rmtree(root)
    _set(tmp_path, finetune={"workers": 2})
    result = finetune.run("ve")
    assert set(result["scenes"]) == {"model", "blind"}
    for variant, weights in serial.items():
        parallel = torch.load(root / variant / "model.pt")
        assert parallel.keys() == weights.keys()
        assert all(torch.equal(parallel[k], weights[k]) for k in weights), variant
    assert (root / "meta.json").read_text() == serial_meta


def test_checkpoint_of_another_preset_is_refused(workspace, tmp_path):
    _workspace(workspace)
    _set(tmp_path, model={"preset": "gat_only", "T": 2, "M": 32})
    with pytest.raises(StageError, match="not trained with model preset 'gat_only'"):
        finetune.run("ve")


def test_evaluate_refuses_other_preset_and_incompatible_vocabulary(workspace, tmp_path):
    _workspace(workspace, {"finetune": {"vqa": {"epochs": 1, "blind_epochs": 1, "max_samples": 8}}})
    finetune.run("vqa")
    meta_path = tmp_path / "data/finetune/vqa/scenes/meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(meta | {"answers": meta["answers"][:-1]}))
    with pytest.raises(StageError, match="incompatible answer vocabulary"):
        evaluate.run("vqa")
    meta_path.write_text(json.dumps(meta))
    _set(tmp_path, model={"preset": "ash", "T": 2, "M": 32})
    with pytest.raises(StageError, match="finetuned from model preset 'gshn'.*'ash'"):
        evaluate.run("vqa")


def test_empty_split_names_it(workspace):
    _workspace(workspace, {"prepare": {"scenes": {"questions_per_image": 0}}})
    with pytest.raises(StageError, match="the train split of the vqa table is empty"):
        finetune.run("vqa")


def test_task_datasets_must_be_prepared(workspace, tmp_path):
    _workspace(workspace)
    _set(tmp_path, finetune={"ve": {"datasets": ["easy_vqa"]}})
    with pytest.raises(StageError, match=r"finetune.ve.datasets lists \['easy_vqa'\]"):
        finetune.run("ve")


def test_missing_pretrain_checkpoint(workspace, tmp_path):
    _workspace(workspace)
    finetune.PRETRAINED.unlink()
    with pytest.raises(StageError, match="run `dvc repro pretrain` first"):
        finetune.run("nlvr2")


def test_vqav2_test_predictions_become_evalai_files(tmp_path, monkeypatch):
    from stages.tasks import TaskData
    from storage.tables import table_path, write_table
    monkeypatch.chdir(tmp_path)
    rows = [{"question_id": q, "image_id": "coco-1", "question": "what?", "answers": [], "answer_type": None,
             "split": "test", "subset": sub} for q, sub in (("11", "test-dev2015"), ("12", "test2015"), ("13", "test-dev2015"))]
    write_table(table_path(tmp_path / "data/prepared/vqav2", "vqa"), "vqa", rows)
    data = TaskData("vqa", "vqav2", "test", ids=["11", "12", "13"])
    evaluate._write_submissions("vqa", "vqav2", data, ["yes", "2", "red"])
    sub = tmp_path / "data/evaluate/vqa/vqav2/submission"
    assert json.loads((sub / "vqa_test-dev2015_results.json").read_text()) == [
        {"question_id": 11, "answer": "yes"}, {"question_id": 13, "answer": "red"}]
    assert len(json.loads((sub / "vqa_test2015_results.json").read_text())) == 3
    with pytest.raises(StageError, match="1 test questions have no node features"):
        evaluate._write_submissions("vqa", "vqav2", TaskData("vqa", "vqav2", "test", ids=["11", "12"]), ["yes", "2"])
