"""Stage `evaluate@<task>`: test-split metrics of the finetuned models beside their baselines.

`python -m stages.evaluate --task vqa` writes, per dataset of `finetune.<task>.datasets`:
- vqa: the VQA accuracy as the authors' vqaEval.py scores it (stages/evaluation/vqa_official.py),
  overall and per answer type, for the model, the text-only (blind) model and the answer prior
  (the most frequent train answer for every question); `vqa_acc`: the model's in the script's
  percent form;
- ve / nlvr2: top-1 accuracy (VE also per label) for the model, the blind model and the majority
  label; NLVR2 also the official consistency (share of sentences with every image pair right);
- itr: Recall@1/5/10 image->text and text->image and their sum (RSUM) of ITC alone and of ITC top-k
  re-ranked by ITM, beside chance; with 5 captions per image an image query hits if any of its
  captions is retrieved. A test split marked with 1K folds (COCO 5K) also gets `folds_1k`: the
  mean over the folds, each ranked on its own.
Every figure comes with its counts: test rows, evaluated, rows whose images have no features and
unlabelled rows (benchmark test questions); nothing is skipped silently.
Outputs: metrics/<task>.json (headline numbers per dataset, git-tracked: `dvc exp show`,
`dvc metrics diff`), data/evaluate/<task>/metrics.json (every figure), data/evaluate/<task>/<dataset>/
predictions.jsonl (every test sample) and examples.json (for the report), and submission files
for real benchmarks' unlabelled test splits (storage/submissions.py).
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import numpy as np
import torch

from models.downstream import TaskModel
from models.gshn import GSHN
from models.text import tokenize
from stages.common import params, paths
from stages.common.cli import TASK, StageError, progress_enabled, run_stage, set_threads
from stages.common.headline import write_headline
from stages.common.model_factory import build_model, resolved_knobs
from stages.common.weights import CheckpointError, load_into, load_weights
from stages.data.pairs import PairCollator, Samples, load_samples
from stages.data.tasks import TaskCollator, TaskData, image_batches, load_task
from stages.evaluation.itm import itm_log_odds
from stages.evaluation.nlvr2 import consistency, nlvr2_sentence
from stages.evaluation.retrieval import KS, chance, fold_captions, folds, mean_over, recalls
from stages.evaluation.vqa_answers import build_vocab
from stages.evaluation.vqa_official import question_accuracy, summarize
from storage import submissions
from storage.atomic import atomic_open, write_json
from storage.tables import read_table, table_path

log = logging.getLogger("stages.evaluate")


# ---- loading the finetuned models -------------------------------------------------------
def read_meta(task: str, dataset: str, mcfg: params.ModelParams) -> dict[str, Any]:
    """The finetuned models' meta.json, refused if it does not fit the current params."""
    path = paths.task_meta(task, dataset)
    if not path.is_file():
        raise StageError(f"{path} not found: run `dvc repro finetune@{task}` first")
    meta = json.loads(path.read_text())
    if (meta.get("preset"), meta.get("size")) != (mcfg.preset, mcfg.size):
        raise StageError(f"{paths.finetune_dir(task, dataset)} was finetuned from model preset {meta.get('preset')!r} "
                         f"(size {meta.get('size')!r}) but params.yaml has {mcfg.preset!r} ({mcfg.size!r}); "
                         f"rerun `dvc repro finetune@{task}`")
    knobs = resolved_knobs(mcfg)
    differ = [f"{k}: {v!r} vs {knobs.get(k)!r}" for k, v in sorted(meta.get("knobs", knobs).items())
              if knobs.get(k) != v]     # a meta written before knobs existed has none: nothing to compare
    if differ:
        raise StageError(f"{paths.finetune_dir(task, dataset)} was finetuned with other model knobs than params.yaml "
                         f"gives ({', '.join(differ)}); rerun `dvc repro finetune@{task}`")
    return meta


def load_task_model(task: str, dataset: str, variant: str, meta: dict[str, Any],
                    mcfg: params.ModelParams) -> TaskModel:
    path = paths.finetune_run(task, dataset, variant) / paths.WEIGHTS
    n_out = len(meta["answers"]) if task == "vqa" else meta["n_out"]
    stored = TaskModel.stored_outputs(load_weights(path, f"dvc repro finetune@{task}"))
    if stored is not None and stored != n_out:
        raise StageError(f"{path}: its head has {stored} outputs but {paths.task_meta(task, dataset)} lists "
                         f"{n_out} {'answers' if task == 'vqa' else 'labels'}: incompatible answer vocabulary; "
                         f"rerun `dvc repro finetune@{task}`")
    base = build_model(mcfg, meta["channels"], meta["max_nodes"], phase=2)
    model = TaskModel.from_pretrained(base, task, n_out, blind=variant == "blind", dropout=mcfg.dropout,
                                      pool=meta.get("pool", "joint"))
    load_into(model, path, f"a {variant} {task} model of preset {mcfg.preset}/{mcfg.size}",
              f"dvc repro finetune@{task}")
    return model.eval()


# ---- classification tasks ---------------------------------------------------------------
@torch.inference_mode()
def predict(model: TaskModel, data: TaskData, collate: TaskCollator, batch_size: int) -> np.ndarray:
    """Arg-max head output of every sample, in data order."""
    out = np.zeros(len(data), dtype=np.int64)
    batches = image_batches(data, batch_size, seed=None)
    for idx in _progress(batches, f"{data.task}/{data.dataset}"):
        out[idx] = model.logits(collate(idx)).argmax(1).numpy()
    return out


def _progress(items: list, desc: str) -> Any:
    if not progress_enabled():
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit="batch")


def evaluate_classifier(task: str, dataset: str, ecfg: params.EvaluateParams,
                        mcfg: params.ModelParams) -> dict[str, Any]:
    meta = read_meta(task, dataset, mcfg)
    data = load_task(task, dataset, "test", labelled=False)
    train = load_task(task, dataset, "train")
    names = meta["answers"] if task == "vqa" else meta["labels"]
    vocab = {a: i for i, a in enumerate(names)} if task == "vqa" else None
    preds: dict[str, list[str]] = {}
    for variant in paths.VARIANTS:
        model = load_task_model(task, dataset, variant, meta, mcfg)
        collate = TaskCollator(data, meta["max_nodes"], meta["max_text_len"], vocab, blind=variant == "blind")
        preds[variant] = [names[i] for i in predict(model, data, collate, ecfg.batch_size)]
        collate.close()
    if task == "vqa":
        prior = build_vocab(train.labels, 1)[0]
        truth = [list(a) for a in data.labels]
    else:
        prior = names[Counter(train.labels).most_common(1)[0][0]]
        truth = [names[y] for y in data.labels]
    preds["prior"] = [prior] * len(data)
    labelled = [i for i in range(len(data)) if task != "vqa" or data.labels[i]]
    if not labelled:
        raise StageError(f"{dataset}: no labelled {task} test samples to score ({len(data)} unlabelled)")
    result = score_classifier(task, data, preds, truth, labelled)
    result["prior_answer" if task == "vqa" else "prior_label"] = prior
    result["counts"] = {"test_rows": data.given + data.unlabelled, "evaluated": len(labelled),
                        "missing_features": data.missing, "unlabelled": len(data) - len(labelled)}
    if task == "vqa":
        few = sum(len(truth[i]) < 4 for i in labelled)
        result["counts"]["under_4_answers"] = few
        if few:
            log.warning("vqa/%s: %d questions have fewer than 4 human answers; the official VQA accuracy of a "
                        "right answer is min(1, (n - 1) / 3) there, below 1", dataset, few)
    _write_predictions(task, dataset, data, preds, truth, ecfg.examples)
    _write_submissions(task, dataset, data, preds["model"])
    return result


def score_classifier(task: str, data: TaskData, preds: dict[str, list[str]], truth: list[Any],
                     labelled: list[int]) -> dict[str, Any]:
    """Each variant's figure on the labelled samples: the official VQA accuracy (vqaEval.py rules;
    `vqa_acc` is the model's in the script's own percent form) or top-1 accuracy, per answer type
    (VQA) or label; NLVR2 also its consistency."""
    if task == "vqa":
        per_sample = {v: [question_accuracy(p[i], truth[i]) for i in labelled] for v, p in preds.items()}
    else:
        per_sample = {v: [float(p[i] == truth[i]) for i in labelled] for v, p in preds.items()}
    result: dict[str, Any] = {v: sum(a) / len(a) for v, a in per_sample.items()}
    result["margin_over_blind"] = result["model"] - result["blind"]
    result["margin_over_prior"] = result["model"] - result["prior"]
    groups = [str(data.answer_types[i] if task == "vqa" else truth[i]) for i in labelled]
    members: dict[str, list[int]] = {}
    for j, g in enumerate(groups):
        members.setdefault(g, []).append(j)
    result["per_answer_type" if task == "vqa" else "per_label"] = {
        g: {"samples": len(js), **{v: sum(a[j] for j in js) / len(js) for v, a in per_sample.items()}}
        for g, js in sorted(members.items())}
    if task == "vqa":
        result["vqa_acc"] = summarize(per_sample["model"], groups)
    if task == "nlvr2":
        ids = [data.ids[i] for i in labelled]
        result["consistency"] = {v: consistency(ids, [p[i] for i in labelled], [truth[i] for i in labelled])
                                 for v, p in preds.items()}
        result["consistency"]["sentences"] = len({nlvr2_sentence(i) for i in ids})
    return result


def _write_predictions(task: str, dataset: str, data: TaskData, preds: dict[str, list[str]],
                       truth: list[Any], examples: int) -> None:
    out = paths.evaluate_dir(task, dataset)
    rows = [{"id": data.ids[i], "images": list(data.images[i]), "text": data.texts[i],
             "prediction": preds["model"][i], "blind": preds["blind"][i], "truth": truth[i],
             **({"answer_type": data.answer_types[i]} if task == "vqa" else {})} for i in range(len(data))]
    with atomic_open(out / "predictions.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    step = max(1, len(rows) // max(examples, 1))
    write_json(paths.evaluate_examples(task, dataset), rows[::step][:examples])


def _write_submissions(task: str, dataset: str, data: TaskData, predicted: list[str]) -> None:
    """Upload files for benchmarks whose test answers are withheld (VQAv2, GQA, NLVR2)."""
    if (task, dataset) not in {("vqa", "vqav2"), ("vqa", "gqa"), ("nlvr2", "nlvr2")}:
        return
    sub = paths.evaluate_dir(task, dataset) / "submission"
    by_id = dict(zip(data.ids, predicted))
    table = read_table(table_path(paths.prepared(dataset), task), task).to_pylist()
    test = [r for r in table if r["split"] == "test"]
    if dataset == "vqav2":
        missing = [r for r in test if r["question_id"] not in by_id]
        if missing:
            raise StageError(f"vqav2: {len(missing)} test questions have no node features, so the EvalAI files would "
                             f"be incomplete; see {table_path(paths.features(dataset), 'rejects')}")
        dev = [r["question_id"] for r in test if r.get("subset") == "test-dev2015"]
        if dev:
            submissions.write_vqa_results(sub / "vqa_test-dev2015_results.json", by_id, dev)
        submissions.write_vqa_results(sub / "vqa_test2015_results.json", by_id, [r["question_id"] for r in test])
    elif dataset == "gqa":
        ids = [r["question_id"] for r in test if r["question_id"] in by_id]
        submissions.write_gqa_predictions(sub / "gqa_testdev_predictions.json", by_id, ids)
    else:
        ids = [r["pair_id"] for r in test if r["pair_id"] in by_id]
        submissions.write_nlvr2_predictions(sub / "nlvr2_test_predictions.csv",
                                            {k: v == "true" for k, v in by_id.items()}, ids)


# ---- image-text retrieval ---------------------------------------------------------------
@torch.inference_mode()
def _embed(model: GSHN, test: Samples, collate: PairCollator, batch_size: int) -> dict[str, Any]:
    """ITC embeddings of every image and caption, the visual tokens and token ids for ITM."""
    img, tokens, masks = [], [], []
    for start in _progress(list(range(0, len(test), batch_size)), "itr: images"):
        nodes = collate([(i, 0) for i in range(start, min(start + batch_size, len(test)))]).nodes
        vis = model.visual(nodes)
        pad = collate.K - vis.tokens.shape[1]
        tokens.append(torch.nn.functional.pad(vis.tokens, (0, 0, 0, pad)))
        masks.append(torch.nn.functional.pad(nodes.node_mask, (0, pad)))
        img.append(model.itc.embed_image(model.pooled_image(vis.tokens, nodes.node_mask)))
    texts = [c for cs in test.captions for c in cs]
    ids, tmask = tokenize(collate.tokenizer, texts, collate.max_len)
    txt = [model.itc.embed_text(model.pooled_text(ids[s: s + batch_size], tmask[s: s + batch_size]))
           for s in range(0, len(texts), batch_size)]
    return {"img": torch.cat(img), "txt": torch.cat(txt), "tokens": torch.cat(tokens), "node_mask": torch.cat(masks),
            "text_ids": ids, "text_mask": tmask,
            "caption_image": [i for i in range(len(test)) for _ in test.captions[i]]}


@torch.inference_mode()
def _itm_scores(model: GSHN, emb: dict[str, Any], pairs: list[tuple[int, int]], batch_size: int) -> np.ndarray:
    """ITM log-odds of a match of (image, caption) index pairs."""
    out = []
    for start in _progress(list(range(0, len(pairs), batch_size)), "itr: ITM re-ranking"):
        chunk = pairs[start: start + batch_size]
        im = torch.tensor([i for i, _ in chunk])
        tx = torch.tensor([t for _, t in chunk])
        out.append(itm_log_odds(model, emb["text_ids"][tx], emb["text_mask"][tx], emb["tokens"][im],
                                   emb["node_mask"][im], embeddings=(emb["img"][im], emb["txt"][tx])))
    return torch.cat(out).numpy() if out else np.zeros(0)


def rerank(sim: np.ndarray, k: int, score: Any) -> np.ndarray:
    """`sim` with each query's ITC top-k moved ahead of the rest, ordered by score(query, candidates) (any
    real scores); the others keep their ITC order below every candidate."""
    k = min(k, sim.shape[1])
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    s = np.asarray(score(top), dtype=np.float64)                  # (queries, k)
    out = sim - sim.max(1, keepdims=True) + s.min(1, keepdims=True) - 1.0
    np.put_along_axis(out, top, s, axis=1)
    return out


def evaluate_itr(dataset: str, ecfg: params.EvaluateParams, mcfg: params.ModelParams) -> dict[str, Any]:
    meta = read_meta("itr", dataset, mcfg)
    model = build_model(mcfg, meta["channels"], meta["max_nodes"], phase=2)
    load_into(model, paths.finetune_run("itr", dataset, "model") / paths.WEIGHTS,
              f"model preset {mcfg.preset}/{mcfg.size}", "dvc repro finetune@itr")
    model.eval()
    test = load_samples([dataset], "test")
    collate = PairCollator(test, meta["max_nodes"], meta["max_text_len"])
    emb = _embed(model, test, collate, ecfg.batch_size)
    collate.close()
    sim = (emb["img"] @ emb["txt"].T).numpy()            # images x captions
    cap_img = np.array(emb["caption_image"])
    k = ecfg.itr_candidates
    itc_weight = 1.0 / float(model.itc.temperature().detach()) if ecfg.itr_rerank == "fused" else 0.0
    itm = _pair_scores(_itm_cache(model, emb, ecfg.batch_size), sim, itc_weight)
    result, i2t, t2i = _ranked_figures(sim, np.arange(len(test)), np.arange(len(cap_img)), cap_img, k, itm)
    result["chance"] = chance(len(test), len(cap_img))
    result["candidates"], result["rerank_score"] = k, ecfg.itr_rerank
    result["counts"] = {"images": len(test), "captions": len(cap_img), "missing_features": test.missing}
    fold_of = _folds(dataset, test)
    if fold_of:
        result["folds_1k"] = _fold_mean(sim, cap_img, fold_of, k, itm)
    _write_retrieval(dataset, test, i2t, t2i, cap_img, ecfg.examples)
    return result


def _itm_cache(model: GSHN, emb: dict[str, Any], batch_size: int) -> Any:
    """pairs -> ITM log-odds, each (image, caption) pair scored once for both directions and all folds."""
    scored: dict[tuple[int, int], float] = {}
    n_nodes, n_tokens = emb["node_mask"].sum(1).tolist(), emb["text_mask"].sum(1).tolist()

    def itm(pairs: list[tuple[int, int]]) -> np.ndarray:
        # new pairs only, grouped by length so that each chunk carries little padding
        todo = sorted({p for p in pairs if p not in scored}, key=lambda p: (n_nodes[p[0]], n_tokens[p[1]], p))
        scored.update(zip(todo, _itm_scores(model, emb, todo, batch_size).tolist()))
        return np.array([scored[p] for p in pairs])
    return itm


def _pair_scores(itm: Any, sim: np.ndarray, itc_weight: float) -> Any:
    """pairs -> re-ranking scores: the ITM log-odds plus `itc_weight` x the ITC similarity (fused: the ITC
    logit sim / temperature, so both terms are log-scores on the scales the model was trained with)."""
    def score(pairs: list[tuple[int, int]]) -> np.ndarray:
        image, caption = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
        return itm(pairs) + itc_weight * sim[image, caption]
    return score


def _ranked_figures(sim: np.ndarray, images: np.ndarray, caps: np.ndarray, cap_local: np.ndarray, k: int,
                    itm: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """ITC and ITC top-k + ITM figures of `images` and `caps` (global indices) ranked among themselves
    (cap_local: each caption's image as a position in `images`), and the re-ranked score matrices."""
    whole = np.array_equal(images, np.arange(sim.shape[0])) and np.array_equal(caps, np.arange(sim.shape[1]))
    sub = sim if whole else sim[np.ix_(images, caps)]

    def i2t_score(top: np.ndarray) -> np.ndarray:
        return itm([(int(images[q]), int(caps[c])) for q in range(top.shape[0]) for c in top[q]]).reshape(top.shape)

    def t2i_score(top: np.ndarray) -> np.ndarray:
        return itm([(int(images[c]), int(caps[q])) for q in range(top.shape[0]) for c in top[q]]).reshape(top.shape)

    i2t, t2i = rerank(sub, k, i2t_score), rerank(sub.T, k, t2i_score)
    return {"itc": recalls(sub, sub.T, cap_local), "itm_rerank": recalls(i2t, t2i, cap_local)}, i2t, t2i


def _folds(dataset: str, test: Samples) -> dict[str, np.ndarray]:
    """The test images of each 1K fold, by the images table's subsets (COCO Karpathy 5K test)."""
    subset = {r["image_id"]: r["subset"]
              for r in read_table(table_path(paths.prepared(dataset), "images"), "images").to_pylist()}
    try:
        return folds([subset.get(i) for i in test.image_ids])
    except ValueError as e:
        raise StageError(f"{dataset}: {e}; rerun `dvc repro prepare@{dataset}`") from None


def _fold_mean(sim: np.ndarray, cap_img: np.ndarray, fold_of: dict[str, np.ndarray], k: int,
               itm: Any) -> dict[str, Any]:
    """The 1K figures: each fold's images and captions ranked among themselves, then the mean over folds."""
    per = []
    for images in fold_of.values():
        caps, local = fold_captions(cap_img, images)
        figures, _, _ = _ranked_figures(sim, images, caps, local, k, itm)
        per.append(figures | {"chance": chance(len(images), len(caps))})
    return {"folds": list(fold_of), "images": [len(v) for v in fold_of.values()],
            **{name: mean_over([f[name] for f in per]) for name in ("itc", "itm_rerank", "chance")}}


def _write_retrieval(dataset: str, test: Samples, i2t: np.ndarray, t2i: np.ndarray, cap_img: np.ndarray,
                     examples: int) -> None:
    out = paths.evaluate_dir("itr", dataset)
    cap_ids = [c for cs in test.caption_ids for c in cs]
    cap_text = [c for cs in test.captions for c in cs]
    top_i2t = np.argsort(-i2t, axis=1, kind="stable")[:, :10]
    top_t2i = np.argsort(-t2i, axis=1, kind="stable")[:, :10]
    submissions.write_retrieval_ranks(out / "i2t_ranks.jsonl", {test.image_ids[q]: [cap_ids[c] for c in top_i2t[q]]
                                                                  for q in range(len(test))}, test.image_ids)
    submissions.write_retrieval_ranks(out / "t2i_ranks.jsonl", {cap_ids[q]: [test.image_ids[c] for c in top_t2i[q]]
                                                                  for q in range(len(cap_ids))}, cap_ids)
    step = max(1, len(test) // max(examples, 1))
    write_json(paths.evaluate_examples("itr", dataset), {
        "i2t": [{"image": test.image_ids[q], "truth": test.captions[q],
                 "top5": [{"caption": cap_text[c], "correct": bool(cap_img[c] == q)} for c in top_i2t[q, :5]]}
                for q in range(0, len(test), step)][:examples],
        "t2i": [{"caption": cap_text[q], "truth": test.image_ids[cap_img[q]],
                 "top5": [{"image": test.image_ids[c], "correct": bool(c == cap_img[q])} for c in top_t2i[q, :5]]}
                for q in range(0, len(cap_ids), step * 5)][:examples]})


# ---- entry point ------------------------------------------------------------------------
def run(task: str) -> dict[str, Any]:
    if task not in paths.TASKS:
        raise StageError(f"unknown task {task!r}; known: {', '.join(paths.TASKS)}")
    mcfg: params.ModelParams = params.load("model")
    ecfg: params.EvaluateParams = params.load("evaluate")
    fcfg: params.FinetuneParams = params.load("finetune")
    tp: params.TaskParams = getattr(fcfg, task)
    set_threads(ecfg.threads)
    torch.manual_seed(0)   # evaluation is deterministic: the spike coding draws from the global RNG
    report = {}
    for ds in tp.datasets:
        report[ds] = evaluate_itr(ds, ecfg, mcfg) if task == "itr" else evaluate_classifier(task, ds, ecfg, mcfg)
        _log(task, ds, report[ds])
    write_json(paths.task_metrics(task), report)
    write_headline(paths.headline(task), {ds: headline_of(task, r) for ds, r in report.items()})
    return report


def headline_of(task: str, r: dict[str, Any]) -> dict[str, float]:
    """The numbers `dvc exp show` compares: accuracy beside its baselines, or retrieval recall. Keys name
    their task (`vqa_acc`, not `acc`), so no two metrics files share a column and DVC needs no file prefix."""
    if task == "itr":
        return {**r["itm_rerank"], "itc_rsum": r["itc"]["rsum"]}
    out = {f"{task}_acc": r["model"], f"{task}_blind": r["blind"], f"{task}_prior": r["prior"],
           f"{task}_margin": r["margin_over_blind"]}
    if task == "nlvr2":
        out["nlvr2_consistency"] = r["consistency"]["model"]
    if task == "vqa":       # the papers' Yes/No, Number, Other columns (GSHN Tables II and VI)
        out |= {f"vqa_{_key(t)}": v["model"] for t, v in r["per_answer_type"].items()}
    return out


def _key(answer_type: str) -> str:
    """An answer type as a metric name: "yes/no" -> "yes_no"."""
    return "".join(c if c.isalnum() else "_" for c in answer_type)


def _log(task: str, ds: str, r: dict[str, Any]) -> None:
    if task == "itr":
        log.info("itr/%s: R@1/5/10 i2t %.3f/%.3f/%.3f t2i %.3f/%.3f/%.3f (ITC top-%d re-ranked by %s); ITC alone "
                 "rsum %.3f; chance R@1 %.4f/%.4f", ds, *(r["itm_rerank"][f"i2t_r{k}"] for k in KS),
                 *(r["itm_rerank"][f"t2i_r{k}"] for k in KS), r["candidates"], r["rerank_score"], r["itc"]["rsum"],
                 r["chance"]["i2t_r1"], r["chance"]["t2i_r1"])
        if "folds_1k" in r:
            log.info("itr/%s: mean over %d 1K folds: rsum %.3f (ITC + ITM), %.3f (ITC)", ds,
                     len(r["folds_1k"]["folds"]), r["folds_1k"]["itm_rerank"]["rsum"], r["folds_1k"]["itc"]["rsum"])
    else:
        log.info("%s/%s: accuracy %.4f, blind %.4f, prior %.4f (margin over blind %+.4f; %d evaluated, "
                 "%d without features)", task, ds, r["model"], r["blind"], r["prior"], r["margin_over_blind"],
                 r["counts"]["evaluated"], r["counts"]["missing_features"])
        if task == "nlvr2":
            log.info("nlvr2/%s: consistency %.4f over %d sentences", ds, r["consistency"]["model"],
                     r["consistency"]["sentences"])


def main(argv: list[str] | None = None) -> None:
    run_stage("evaluate", __doc__, run, argv, TASK, (CheckpointError, submissions.SubmissionError))


if __name__ == "__main__":
    main()
