"""evaluate's metrics recomputed from what it wrote (predictions.jsonl, the ranks files) with the metric
functions, and an evaluation whose predictor returns the truth scoring exactly 1."""
import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stages import evaluate, features, finetune, prepare, segment
from stages.common import params, paths
from stages.common.model_factory import build_model
from stages.data.pairs import feature_meta
from stages.evaluation.metrics import recall_of_rankings, top1_accuracy
from stages.evaluation.nlvr2 import consistency
from stages.evaluation.vqa_official import question_accuracy, summarize
from storage.tables import VE_LABELS, read_table, table_path

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
MODEL = {"model": {"T": 2, "M": 32}}
VARIANTS = ("model", "blind", "prior")


def _features(workspace):
    workspace(MODEL)
    prepare.run("scenes"), segment.run("scenes"), features.run("scenes")


def _rows(task):
    with open(paths.evaluate_dir(task, "scenes") / "predictions.jsonl") as fh:
        return [json.loads(line) for line in fh]


def _predictions(rows, metrics):
    prior = metrics.get("prior_answer", metrics.get("prior_label"))
    return {"model": [r["prediction"] for r in rows], "blind": [r["blind"] for r in rows],
            "prior": [prior] * len(rows)}


def _check_vqa(m):
    rows = [r for r in _rows("vqa") if r["truth"]]
    assert len(rows) == m["counts"]["evaluated"] > 0
    preds = _predictions(rows, m)
    accs = {v: [question_accuracy(p, r["truth"]) for p, r in zip(preds[v], rows)] for v in VARIANTS}
    for v in VARIANTS:
        assert m[v] == pytest.approx(np.mean(accs[v]))
        for atype, group in m["per_answer_type"].items():
            members = [a for a, r in zip(accs[v], rows) if r["answer_type"] == atype]
            assert group["samples"] == len(members) and group[v] == pytest.approx(np.mean(members))
    assert m["vqa_acc"] == summarize(accs["model"], [r["answer_type"] for r in rows])


def _check_labels(task, m):
    rows = _rows(task)
    assert len(rows) == m["counts"]["evaluated"] > 0
    preds, truth = _predictions(rows, m), [r["truth"] for r in rows]
    for v in VARIANTS:
        assert m[v] == pytest.approx(top1_accuracy(preds[v], truth))
        for label, group in m["per_label"].items():
            idx = [i for i, t in enumerate(truth) if t == label]
            assert group[v] == pytest.approx(top1_accuracy([preds[v][i] for i in idx], [truth[i] for i in idx]))
        if task == "nlvr2":
            assert m["consistency"][v] == pytest.approx(consistency([r["id"] for r in rows], preds[v], truth))


def _check_itr(m):
    caps = [r for r in read_table(table_path(paths.prepared("scenes"), "captions"), "captions").to_pylist()
            if r["split"] == "test"]
    image_of = {c["caption_id"]: c["image_id"] for c in caps}
    out = paths.evaluate_dir("itr", "scenes")
    for name, gt in (("i2t", lambda q: {c for c, i in image_of.items() if i == q}), ("t2i", lambda q: {image_of[q]})):
        ranks = [json.loads(line) for line in (out / f"{name}_ranks.jsonl").open()]
        recall = recall_of_rankings([r["ranked"] for r in ranks], [gt(r["query"]) for r in ranks], (1, 5, 10))
        assert {k: m["itm_rerank"][f"{name}_r{k}"] for k in (1, 5, 10)} == pytest.approx(recall)


def test_metrics_recomputed_from_predictions(workspace):
    """Finetuned (1 epoch) models: every figure in metrics/<task>.json follows from the rows written."""
    _features(workspace)
    torch.manual_seed(0)
    model = build_model(params.load("model"), *feature_meta(["scenes"]), 2)
    paths.pretrained_weights().parent.mkdir(parents=True)
    torch.save(model.state_dict(), paths.pretrained_weights())
    for task in paths.TASKS:
        finetune.run(task)
        evaluate.run(task)
    metrics = {t: json.loads(paths.task_metrics(t).read_text())["scenes"] for t in paths.TASKS}
    _check_vqa(metrics["vqa"])
    _check_labels("ve", metrics["ve"])
    _check_labels("nlvr2", metrics["nlvr2"])
    nlvr2 = metrics["nlvr2"]
    assert nlvr2["consistency"]["sentences"] == nlvr2["counts"]["evaluated"]   # scenes: one pair per sentence
    _check_itr(metrics["itr"])


def _truth_predictor(monkeypatch, answers):
    """Patch evaluate so that its 'model' predicts each sample's truth (VQA: its most common answer)."""
    C, K = feature_meta(["scenes"])
    mcfg = params.load("model")
    meta = {"preset": mcfg.preset, "size": mcfg.size, "channels": C, "max_nodes": K, "max_text_len": 16,
            "answers": answers, "labels": None}

    def read_meta(task, dataset, _mcfg):
        return meta | {"labels": list(VE_LABELS) if task == "ve" else ["false", "true"]}

    def predict(model, data, collate, batch_size):
        if data.task == "vqa":
            return np.array([answers.index(Counter(a).most_common(1)[0][0]) if a else 0 for a in data.labels])
        return np.array(data.labels)

    def embed(model, test, collate, batch_size):
        n, cap_img = len(test), [i for i in range(len(test)) for _ in test.captions[i]]
        eye = torch.eye(n)
        return {"img": eye, "txt": eye[cap_img], "tokens": None, "node_mask": torch.ones(n, 1),
                "text_mask": torch.ones(len(cap_img), 1), "caption_image": cap_img}

    def itm_scores(model, emb, pairs, batch_size):
        return np.array([float(emb["caption_image"][c] == i) for i, c in pairs])

    for name, fn in (("read_meta", read_meta), ("predict", predict), ("_embed", embed), ("_itm_scores", itm_scores),
                     ("load_task_model", lambda *a: None), ("build_model", lambda *a, **k: _FakeModel()),
                     ("load_into", lambda *a: None)):
        monkeypatch.setattr(evaluate, name, fn)


class _FakeModel(torch.nn.Identity):
    """What the retrieval evaluation reads of a model besides the patched functions: the ITC temperature."""

    def __init__(self) -> None:
        super().__init__()
        self.itc = SimpleNamespace(temperature=lambda: torch.tensor(0.07))


def test_truth_predictor_scores_exactly_one(workspace, monkeypatch):
    _features(workspace)
    vqa_rows = read_table(table_path(paths.prepared("scenes"), "vqa"), "vqa").to_pylist()
    _truth_predictor(monkeypatch, sorted({a for r in vqa_rows for a in r["answers"]}))
    for task in paths.TASKS:
        evaluate.run(task)
    m = {t: json.loads(paths.task_metrics(t).read_text())["scenes"] for t in paths.TASKS}
    for task in ("vqa", "ve", "nlvr2"):
        assert m[task]["model"] == m[task]["blind"] == 1.0, task
        groups = m[task]["per_answer_type" if task == "vqa" else "per_label"]
        assert all(g["model"] == 1.0 for g in groups.values())
    assert m["vqa"]["vqa_acc"]["overall"] == 100.0 and set(m["vqa"]["vqa_acc"]["perAnswerType"].values()) == {100.0}
    assert m["nlvr2"]["consistency"]["model"] == 1.0
    assert m["itr"]["itc"]["rsum"] == m["itr"]["itm_rerank"]["rsum"] == 6.0
    assert m["vqa"]["prior"] < 1.0 and m["ve"]["prior"] < 1.0     # the baselines are not the truth
