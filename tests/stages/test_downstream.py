"""finetune -> evaluate -> report on a tiny workspace, and their refusals of bad inputs."""
import csv
import json
import shutil

import pytest
import torch
import yaml

from stages import evaluate, features, finetune, prepare, report, segment
from stages.common import params, paths
from stages.common.cli import StageError
from stages.common.model_factory import build_model
from stages.data.pairs import feature_meta
from stages.data.tasks import TaskCollator, TaskData, image_batches, load_task
from stages.training.trainer import load_weights
from storage.tables import read_table, table_path, write_table

pytestmark = pytest.mark.usefixtures("one_thread")
MODEL = {"model": {"T": 2, "M": 32}}


def _workspace(workspace, overrides=None):
    """Tiny scenes features, and a pretrain checkpoint: the seeded initial weights of the preset
    (finetuning mechanics do not need a pretrained model)."""
    cfg = workspace(MODEL | (overrides or {}))
    prepare.run("scenes"), segment.run("scenes"), features.run("scenes")
    torch.manual_seed(0)
    model = build_model(params.load("model"), *feature_meta(["scenes"]), 2)
    paths.pretrained_weights().parent.mkdir(parents=True)
    torch.save(model.state_dict(), paths.pretrained_weights())
    return cfg


def _set(tmp_path, **sections):
    cfg = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for name, value in sections.items():
        cfg[name] = cfg.get(name, {}) | value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))


@pytest.mark.slow
def test_all_tasks_end_to_end(workspace, tmp_path):
    _workspace(workspace)
    for task in paths.TASKS:
        finetune.run(task)
        evaluate.run(task)
    vqa = json.loads((tmp_path / "data/evaluate/vqa/metrics.json").read_text())["scenes"]
    rows = [json.loads(line) for line in (tmp_path / "data/evaluate/vqa/scenes/predictions.jsonl").open()]
    assert vqa["counts"]["evaluated"] == len(rows) == 8 * 2      # 8 test images x 2 questions, none skipped
    assert vqa["counts"]["missing_features"] == 0
    assert 0 <= vqa["model"] <= 1 and 0 <= vqa["blind"] <= 1
    assert set(vqa["per_answer_type"]) <= {"yes/no", "number", "other"}
    assert vqa["margin_over_blind"] == pytest.approx(vqa["model"] - vqa["blind"])
    headline = {t: json.loads((tmp_path / f"metrics/{t}.json").read_text()) for t in paths.TASKS}
    per_type = {f"vqa_{t.replace('/', '_')}": v["model"] for t, v in vqa["per_answer_type"].items()}
    assert headline["vqa"] == {"scenes": {"vqa_acc": vqa["model"], "vqa_blind": vqa["blind"],
                                          "vqa_prior": vqa["prior"], "vqa_margin": vqa["margin_over_blind"],
                                          **per_type}}
    assert set(headline["nlvr2"]["scenes"]) == {"nlvr2_acc", "nlvr2_blind", "nlvr2_prior", "nlvr2_margin",
                                                "nlvr2_consistency"}
    assert headline["itr"]["scenes"]["rsum"] == pytest.approx(sum(v for k, v in headline["itr"]["scenes"].items()
                                                                  if k.startswith(("i2t", "t2i"))))
    meta = json.loads((tmp_path / "data/finetune/vqa/scenes/meta.json").read_text())
    assert meta["answers"] and meta["preset"] == "gshn"
    ve = json.loads((tmp_path / "data/evaluate/ve/metrics.json").read_text())["scenes"]
    assert set(ve["per_label"]) <= {"entailment", "neutral", "contradiction"}
    itr = json.loads((tmp_path / "data/evaluate/itr/metrics.json").read_text())["scenes"]
    assert itr["counts"] == {"images": 8, "captions": 40, "missing_features": 0}
    assert itr["chance"]["t2i_r1"] == pytest.approx(1 / 8)
    for ranking in ("itc", "itm_rerank"):  # recall grows with K
        assert itr[ranking]["i2t_r1"] <= itr[ranking]["i2t_r5"] <= itr[ranking]["i2t_r10"]
        assert itr[ranking]["t2i_r10"] == 1.0   # only 8 images to rank
    ranks = [json.loads(line) for line in (tmp_path / "data/evaluate/itr/scenes/t2i_ranks.jsonl").open()]
    assert len(ranks) == 40 and all(len(r["ranked"]) == 8 for r in ranks)
    itr_val = _tsv(paths.finetune_plot("itr", "scenes", "model", val=True))    # retrieval validates by ITC R@1
    assert len(itr_val) == 1 and 0 <= float(itr_val[0]["val_itc_r1"]) <= 1
    assert float(itr_val[0]["val_itc_r1"]) == pytest.approx(
        (float(itr_val[0]["val_itc_r1_i2t"]) + float(itr_val[0]["val_itc_r1_t2i"])) / 2)

    summary = report.run()
    for task in paths.TASKS:
        assert task in summary
    page = (tmp_path / "data/report/index.html").read_text()
    assert page.count("data:image/png;base64,") >= 8 and 'src="figures' not in page   # self-contained
    assert "official VQA accuracy (vqaEval.py, percent): overall" in page
    assert "consistency (share of" in page
    assert "commit: (not a git checkout)" in page and "<details><summary>parameters of this run" in page
    assert page.count("<p>confusion of labels on scenes") == 2 and "<p>confusion of yes/no answers on scenes" in page
    assert "answers of another type than the question&#x27;s on scenes: model" in page
    assert "left and right image side by side" in page and "(left image for NLVR2)" not in page
    assert "the graph nodes (the largest segments" in page and "one panel per logged metric" in page
    md = (tmp_path / "data/report/report.md").read_text()
    assert "![" in md and all((tmp_path / "data/report" / p).is_file()
                              for p in [line.split("](")[1].rstrip(")") for line in md.splitlines()
                                        if line.startswith("![")])


def _custom_copy_of_scenes(tmp_path):
    """The scenes images and questions once more, as the `custom` dataset: VQA's second dataset."""
    by_image: dict[str, dict] = {}
    for r in read_table(table_path(paths.prepared("scenes"), "vqa"), "vqa").to_pylist():
        line = by_image.setdefault(r["image_id"], {"image": f"{r['image_id']}.png", "split": r["split"],
                                                   "id": f"copy-{r['image_id']}", "questions": []})
        line["questions"].append({"question": r["question"], "answers": list(r["answers"]),
                                  "answer_type": r["answer_type"]})
    ann = tmp_path / "custom.jsonl"
    ann.write_text("\n".join(json.dumps(line) for line in by_image.values()))
    cfg = yaml.safe_load((tmp_path / "params.yaml").read_text())
    cfg["datasets"] = ["scenes", "custom"]
    cfg["prepare"]["custom"] |= {"root": str(tmp_path / "data/prepared/scenes/images"), "annotations": str(ann)}
    cfg["finetune"]["vqa"]["datasets"] = ["scenes", "custom"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    prepare.run("custom"), segment.run("custom"), features.run("custom")


def test_parallel_trainings_equal_serial_ones(workspace, tmp_path):
    """finetune.workers runs the two datasets' model trainings in two processes (each blind after a
    model): the same weights and meta as one by one."""
    _workspace(workspace, {"finetune": {"vqa": {"max_samples": 16}}})
    _custom_copy_of_scenes(tmp_path)
    roots = {ds: tmp_path / "data/finetune/vqa" / ds for ds in ("scenes", "custom")}
    finetune.run("vqa")
    serial = {(ds, v): torch.load(root / v / "model.pt") for ds, root in roots.items() for v in ("model", "blind")}
    serial_meta = {ds: (root / "meta.json").read_text() for ds, root in roots.items()}
    shutil.rmtree(tmp_path / "data/finetune/vqa")
    _set(tmp_path, finetune={"workers": 2})
    result = finetune.run("vqa")
    assert {ds: set(r) for ds, r in result.items()} == {"scenes": {"model", "blind"}, "custom": {"model", "blind"}}
    for (ds, variant), weights in serial.items():
        parallel = torch.load(roots[ds] / variant / "model.pt")
        assert parallel.keys() == weights.keys()
        assert all(torch.equal(parallel[k], weights[k]) for k in weights), (ds, variant)
    assert {ds: (root / "meta.json").read_text() for ds, root in roots.items()} == serial_meta


def _tsv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _val_loss(task, dataset, variant):
    """The val loss of the finetuned model.pt, scored as evaluate loads it."""
    mcfg, fcfg = params.load("model"), params.load("finetune")
    meta = evaluate.read_meta(task, dataset, mcfg)
    model = evaluate.load_task_model(task, dataset, variant, meta, mcfg)
    val = load_task(task, dataset, "val")
    collate = TaskCollator(val, meta["max_nodes"], meta["max_text_len"], None, blind=variant == "blind")
    score = finetune.ClassifierScore(val, collate, getattr(fcfg, task).batch_size, fcfg.val.max_samples)
    with torch.no_grad():
        return score(model)["loss"]


def test_val_curve_the_kept_epoch_is_the_model_and_plots_are_copied(workspace, tmp_path):
    """Each epoch is scored on the val split (plots/val.tsv, beside losses.tsv); model.pt (what evaluate
    reads) is the best epoch's, whose val loss it has; keep: last rewrites it from the last epoch without
    training again. The logs' git-tracked copies land in plots/finetune/<task>/."""
    _workspace(workspace, {"finetune": {"ve": {"epochs": 3, "max_samples": 16}}})
    finetune.run("ve")
    run = paths.finetune_run("ve", "scenes", "model")
    rows = _tsv(run / "plots/val.tsv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"epoch", "step", "val_acc", "val_loss"}
    accs = [float(r["val_acc"]) for r in rows]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == metrics["kept_epoch"] == accs.index(max(accs)) + 1
    assert metrics["val_acc"] == pytest.approx(max(accs))
    best = load_weights(run / "checkpoint/best.pt")
    assert all(torch.equal(v, best[k]) for k, v in load_weights(run / "model.pt").items())
    assert _val_loss("ve", "scenes", "model") == pytest.approx(float(rows[metrics["kept_epoch"] - 1]["val_loss"]))
    for variant, epochs in (("model", 3), ("blind", 1)):
        src = paths.finetune_run("ve", "scenes", variant) / "plots"
        assert paths.finetune_plot("ve", "scenes", variant).read_text() == (src / "losses.tsv").read_text()
        assert len(_tsv(paths.finetune_plot("ve", "scenes", variant, val=True))) == epochs
    assert sorted(p.name for p in paths.finetune_plots("ve").iterdir()) == \
        ["scenes-blind-val.tsv", "scenes-blind.tsv", "scenes-model-val.tsv", "scenes-model.tsv"]

    state = (run / "checkpoint/state.json").read_text()
    _set(tmp_path, finetune={"val": {"keep": "last"}})
    finetune.run("ve")
    assert (run / "checkpoint/state.json").read_text() == state           # resumed: nothing trained again
    last = load_weights(run / "checkpoint/model.pt")
    assert all(torch.equal(v, last[k]) for k, v in load_weights(run / "model.pt").items())
    assert _val_loss("ve", "scenes", "model") == pytest.approx(float(rows[-1]["val_loss"]))


def test_a_dataset_without_a_val_split_keeps_its_last_epoch(workspace, caplog):
    _workspace(workspace, {"finetune": {"ve": {"epochs": 1, "max_samples": 8}}})
    table = table_path(paths.prepared("scenes"), "ve")
    write_table(table, "ve", [r for r in read_table(table, "ve").to_pylist() if r["split"] != "val"])
    with caplog.at_level("WARNING", logger="stages.finetune"):
        finetune.run("ve")
    assert "ve/scenes: no validation, the last epoch is kept (scenes: the val split of the ve table is empty" \
        in caplog.text
    run = paths.finetune_run("ve", "scenes", "model")
    assert "best_epoch" not in json.loads((run / "metrics.json").read_text()) and not (run / "plots/val.tsv").exists()
    assert sorted(p.name for p in paths.finetune_plots("ve").iterdir()) == ["scenes-blind.tsv", "scenes-model.tsv"]


def test_a_new_dataset_never_retrains_or_deletes_the_others(workspace, tmp_path, caplog):
    """Adding a dataset to a task's list resumes the others' finished runs (the list is not in their
    fingerprint); dropping one leaves its results in place."""
    _workspace(workspace, {"finetune": {"vqa": {"max_samples": 16}}})
    finetune.run("vqa")
    scenes = paths.finetune_dir("vqa", "scenes")
    done = {v: (scenes / v / "checkpoint/state.json").read_text() for v in ("model", "blind")}
    _custom_copy_of_scenes(tmp_path)                  # finetune.vqa.datasets: [scenes, custom]
    assert set(finetune.run("vqa")) == {"scenes", "custom"}
    assert {v: (scenes / v / "checkpoint/state.json").read_text() for v in ("model", "blind")} == done
    cfg = yaml.safe_load((tmp_path / "params.yaml").read_text())
    cfg["finetune"]["vqa"]["datasets"] = ["custom"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level("INFO", logger="stages.finetune"):
        assert set(finetune.run("vqa")) == {"custom"}
    assert "vqa: scenes not in finetune.vqa.datasets: left in data/finetune/vqa as they are" in caplog.text
    assert {v: (scenes / v / "checkpoint/state.json").read_text() for v in ("model", "blind")} == done
    assert (scenes / "meta.json").is_file() and (scenes / "model/model.pt").is_file()
    assert sorted(p.name for p in paths.finetune_plots("vqa").iterdir()) == \
        ["custom-blind-val.tsv", "custom-blind.tsv", "custom-model-val.tsv", "custom-model.tsv"]


def test_processes_are_counted_in_model_trainings(workspace, tmp_path, caplog):
    """One dataset: the blind baseline runs after the model, in one process with both workers' threads."""
    _workspace(workspace, {"finetune": {"workers": 2}})
    with caplog.at_level("INFO", logger="stages.finetune"):
        finetune.run("ve")
    assert "ve: 2 training(s) in 1 process(es) of 2 thread(s)" in caplog.text


def test_checkpoint_of_another_preset_is_refused(workspace, tmp_path):
    _workspace(workspace)
    _set(tmp_path, model={"preset": "gat_only", "T": 2, "M": 32})
    with pytest.raises(StageError, match="does not fit a model trained with model preset 'gat_only'"):
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
    paths.pretrained_weights().unlink()
    with pytest.raises(StageError, match="run `dvc repro pretrain` first"):
        finetune.run("nlvr2")


@pytest.mark.slow
def test_random_init_is_the_no_pretraining_control(workspace, tmp_path):
    """finetune.init: random starts from fresh weights (no pretrain checkpoint needed); pretrained from the
    checkpoint: the two starting models differ, and the init is recorded in the task's meta.json."""
    from stages.common.model_factory import initial_model
    _workspace(workspace)
    C, K = feature_meta(["scenes"])
    with torch.no_grad():
        for p in (trained := build_model(params.load("model"), C, K, 2)).parameters():
            p.add_(1.0)                              # a "pretrained" checkpoint unlike any fresh init
    torch.save(trained.state_dict(), paths.pretrained_weights())
    torch.manual_seed(0)
    fresh = initial_model(params.load("model"), C, K, "random").state_dict()
    loaded = initial_model(params.load("model"), C, K, "pretrained").state_dict()
    assert torch.equal(loaded["itm.fc.weight"], trained.state_dict()["itm.fc.weight"])
    assert not torch.equal(fresh["itm.fc.weight"], loaded["itm.fc.weight"])
    paths.pretrained_weights().unlink()
    _set(tmp_path, finetune={"init": "random", "nlvr2": {"datasets": ["scenes"], "epochs": 1, "blind_epochs": 1,
                                                          "batch_size": 8, "max_samples": 16}})
    finetune.run("nlvr2")
    assert json.loads(paths.task_meta("nlvr2", "scenes").read_text())["init"] == "random"


@pytest.mark.slow
def test_predictions_do_not_depend_on_batch_size_or_order(workspace):
    """The evaluation protocol for batch-as-time models: a test prediction is the same whatever
    `evaluate.batch_size` is and however the test table is ordered (README "The model and pretraining")."""
    import dataclasses

    import numpy as np

    from models.downstream import TaskModel
    from stages.data.tasks import TaskCollator, load_task
    _workspace(workspace)
    mcfg = params.load("model")
    C, K = feature_meta(["scenes"])
    torch.manual_seed(0)
    model = TaskModel.from_pretrained(build_model(mcfg, C, K, 2), "ve", 3, pool="product").eval()
    data = load_task("ve", "scenes", "test")
    order = np.random.default_rng(0).permutation(len(data)).tolist()
    shuffled = dataclasses.replace(data, **{f: [getattr(data, f)[i] for i in order]
                                            for f in ("ids", "images", "texts", "labels")})
    runs = {}
    for name, d, bs in (("table, 4", data, 4), ("table, 64", data, 64), ("shuffled, 16", shuffled, 16)):
        with torch.no_grad():
            preds = evaluate.predict(model, d, TaskCollator(d, K, mcfg.max_text_len), bs)
        runs[name] = dict(zip(d.ids, preds.tolist()))
    assert runs["table, 4"] == runs["table, 64"] == runs["shuffled, 16"]


def test_vqav2_test_predictions_become_evalai_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subsets = (("11", "test-dev2015"), ("12", "test2015"), ("13", "test-dev2015"))
    rows = [{"question_id": q, "image_id": "coco-1", "question": "what?", "answers": [], "answer_type": None,
             "split": "test", "subset": sub} for q, sub in subsets]
    write_table(table_path(tmp_path / "data/prepared/vqav2", "vqa"), "vqa", rows)
    data = TaskData("vqa", "vqav2", "test", ids=["11", "12", "13"])
    evaluate._write_submissions("vqa", "vqav2", data, ["yes", "2", "red"])
    sub = tmp_path / "data/evaluate/vqa/vqav2/submission"
    assert json.loads((sub / "vqa_test-dev2015_results.json").read_text()) == [
        {"question_id": 11, "answer": "yes"}, {"question_id": 13, "answer": "red"}]
    assert len(json.loads((sub / "vqa_test2015_results.json").read_text())) == 3
    with pytest.raises(StageError, match="1 test questions have no node features"):
        evaluate._write_submissions("vqa", "vqav2", TaskData("vqa", "vqav2", "test", ids=["11", "12"]), ["yes", "2"])


def test_image_batches_keep_every_sample_once_and_two_images_per_batch():
    """An image with more samples than a batch holds still shares its batch with another image."""
    per_image = {"a": 5, "b": 1, "c": 2, "d": 6, "e": 1}
    data = TaskData("nlvr2", "toy", "train")
    for image, n in per_image.items():
        for k in range(n):
            data.ids.append(f"{image}{k}"), data.images.append((image, "x"))
            data.texts.append("t"), data.labels.append(0)
    for seed in (None, 0, 1):
        batches = image_batches(data, 4, seed)
        assert sorted(i for b in batches for i in b) == list(range(len(data)))
        assert all(len({data.images[i][0] for i in b}) >= 2 for b in batches)
        for b in batches[:-1]:   # cut as soon as it held 4 samples of 2 images
            before = [i for i in b if data.images[i][0] != data.images[b[-1]][0]]
            assert len(before) < 4 or len({data.images[i][0] for i in before}) < 2
