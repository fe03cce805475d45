"""Stage `report`: data/report/index.html (self-contained) + report.md + summary.txt.

Reads what the stages before it wrote and nothing else, besides one forward pass of the pretrained
visual encoder on a few validation images for the spike figures:
- a header: the git commit (and uncommitted changes), the date, the parameters of the run;
- per task and dataset: the metric beside its baselines (blind model, prior or chance) and the margin;
  confusion matrices from the predictions (VE / NLVR2 labels; VQA: per answer type, its most frequent
  answers, and the count of answers of another type than the question's); VQA per question kind where
  the vqa table marks kinds (`subset`: easy_vqa colour / shape questions, COCO-QA types); examples;
- loss curves, one metric per panel (pretraining: warm-up and main on one step axis); segment
  overlays with the graph nodes marked; SNN firing-rate histograms and a spike raster; the energy
  estimate (SNN vs its ANN twin); retrieval top-5;
- the papers' ablation tables as `python -m stages.study` last collected them in data/study/ (read when the
  report runs: no DVC dependency, as the study reads git's experiment refs; `dvc repro -f -s report` after one).
summary.txt is the table printed at the end of `make run`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.common import params, paths
from stages.common.cli import StageError, run_stage, set_threads
from stages.common.model_factory import load_pretrained
from stages.common.weights import CheckpointError
from stages.data.pairs import PairCollator, feature_meta, load_samples
from stages.reporting import figures as fig
from stages.reporting import predictions as pred
from stages.reporting.header import header_blocks
from stages.reporting.nodes import graph_nodes
from stages.reporting.render import Block, render, table_text
from stages.studies.render import report_section
from stages.training import trainer
from storage.atomic import atomic_dir
from storage.images import load_rgb
from storage.maskcodec import decode_png
from storage.shards import ShardReader
from storage.tables import read_table, table_path

log = logging.getLogger("stages.report")
PHASE_NAMES = {"warmup": "warm-up", "main": "main"}
METRIC = {"vqa": "VQA accuracy", "ve": "accuracy", "nlvr2": "accuracy"}


class Images:
    """RGB images of the prepared datasets by image id (for thumbnails and overlays)."""

    def __init__(self) -> None:
        self._paths: dict[str, dict[str, str]] = {}

    def get(self, dataset: str, image_id: str, size: int = 96, resize: str = "squash") -> np.ndarray:
        """The image as a `size` square (`resize` as segment.resize: overlays must match their masks)."""
        if dataset not in self._paths:
            rows = read_table(table_path(paths.prepared(dataset), "images"), "images").to_pylist()
            self._paths[dataset] = {r["image_id"]: r["path"] for r in rows}
        p = Path(self._paths[dataset][image_id])
        return load_rgb(p if p.is_absolute() else paths.prepared(dataset) / p, size, resize)


# ---- sections --------------------------------------------------------------------------
def summary_rows(metrics: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for task, per_ds in metrics.items():
        for ds, r in per_ds.items():
            if task == "itr":
                for d in ("i2t", "t2i"):
                    for name, label in (("itm_rerank", "ITC+ITM"), ("itc", "ITC")):
                        m, c = r[name][f"{d}_r1"], r["chance"][f"{d}_r1"]
                        rows.append([task, ds, f"R@1 {d} ({label})", f"{m:.4f}", f"chance {c:.4f}", "",
                                     f"{m - c:+.4f}"])
            else:
                rows.append([task, ds, METRIC[task], f"{r['model']:.4f}", f"blind {r['blind']:.4f}",
                             f"prior {r['prior']:.4f}", f"{r['margin_over_blind']:+.4f}"])
    return rows


SUMMARY_HEADER = ["task", "dataset", "metric", "model", "baseline", "prior", "margin"]


def _recall_rows(r: dict[str, Any]) -> list[list[str]]:
    return [[name, *[f"{r[name][f'{d}_r{k}']:.4f}" for d in ("i2t", "t2i") for k in (1, 5, 10)],
             f"{r[name].get('rsum', 0):.3f}"] for name in ("itm_rerank", "itc", "chance")]


def official_lines(r: dict[str, Any]) -> list[Block]:
    """What the official tools print: vqaEval.py's overall and per-type percent; NLVR2's consistency."""
    out: list[Block] = []
    if "vqa_acc" in r:
        per = ", ".join(f"{k} {v:.2f}" for k, v in r["vqa_acc"]["perAnswerType"].items())
        out.append(("p", f"official VQA accuracy (vqaEval.py, percent): overall {r['vqa_acc']['overall']:.2f}; {per}"))
    if "consistency" in r:
        c = r["consistency"]
        out.append(("p", f"consistency (share of {c['sentences']} sentences with every image pair right): "
                         + ", ".join(f"{v} {c[v]:.4f}" for v in ("model", "blind", "prior") if v in c)))
    return out


def task_blocks(task: str, per_ds: dict[str, Any], images: Images, n_retrieval: int) -> list[Block]:
    out: list[Block] = [("h2", f"{task}")]
    for ds, r in per_ds.items():
        out.append(("h3", f"{task} on {ds}"))
        out.append(("p", "counts: " + ", ".join(f"{k} {v}" for k, v in r["counts"].items())))
        if task == "itr":
            head = ["ranking", *[f"{d} R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)], "rsum"]
            out.append(("table", head, _recall_rows(r)))
            if "folds_1k" in r:
                out.append(("table", ["1K folds (mean)", *head[1:]], _recall_rows(r["folds_1k"])))
            out += retrieval_examples(ds, images, n_retrieval)
        else:
            groups = r.get("per_answer_type") or r.get("per_label") or {}
            out.append(("table", ["group", "samples", "model", "blind", "prior"],
                        [["all", str(r["counts"]["evaluated"]), f"{r['model']:.4f}", f"{r['blind']:.4f}",
                          f"{r['prior']:.4f}"]] + [[g, str(v["samples"]), f"{v['model']:.4f}", f"{v['blind']:.4f}",
                                                    f"{v['prior']:.4f}"] for g, v in groups.items()]))
            out += official_lines(r)
            rows = pred.read_predictions(task, ds)
            out += confusion_blocks(task, ds, rows)
            if task == "vqa":
                out += kind_blocks(ds, rows, r["prior_answer"])
            out += prediction_examples(task, ds, images)
        runs = {v: paths.finetune_run(task, ds, v) / trainer.LOSSES for v in paths.VARIANTS}
        series = {v: fig.read_tsv(p) for v, p in runs.items() if p.is_file()}
        if series:
            out.append(("img", f"loss-{task}-{ds}", fig.metric_panels(series, "optimizer step"),
                        f"finetuning of {task} on {ds}: one panel per logged metric, the model and its blind "
                        f"baseline (validation columns dashed)"))
    return out


def confusion_blocks(task: str, ds: str, rows: list[dict[str, Any]]) -> list[Block]:
    """Counts of (true, predicted) of the model and the blind model: a table and heat maps; VQA: one pair
    per answer type, over its most frequent answers."""
    if not rows:
        return []
    if task != "vqa":
        labels, mats = pred.confusions(task, rows)
        return _confusion(f"{task}-{ds}", f"labels on {ds} ({len(rows)} labelled test samples)", labels, mats,
                          ("true label", "predicted label"))
    wrong = pred.cross_type(rows)
    out: list[Block] = [("p", f"answers of another type than the question's on {ds}: model {wrong['prediction']}, "
                              f"blind {wrong['blind']} of {len(rows)}")]
    for atype, (labels, mats) in pred.answer_confusions(rows).items():
        n = int(mats["prediction"].sum())
        out += _confusion(f"{task}-{ds}-{atype.replace('/', '')}", f"{atype} answers on {ds} ({n} questions; "
                          f"the {pred.TOP_ANSWERS} most frequent true answers)", labels, mats,
                          ("most frequent human answer", "answer given"))
    return out


def _confusion(name: str, what: str, labels: list[str], mats: dict[str, np.ndarray],
               axes: tuple[str, str]) -> list[Block]:
    named = {"model": mats["prediction"], "blind": mats["blind"]}
    table = [[t, *(f"{named['model'][i, j]} / {named['blind'][i, j]}" for j in range(len(labels)))]
             for i, t in enumerate(labels)]
    return [("p", f"confusion of {what}; rows: {axes[0]}, columns: {axes[1]}; each cell: model / blind"),
            ("table", [f"{axes[0]} \\ {axes[1]}", *labels], table),
            ("img", f"confusion-{name}", fig.confusion(named, labels, *axes),
             f"confusion of {what}: the model and the blind model")]


def kind_blocks(ds: str, rows: list[dict[str, Any]], prior: str) -> list[Block]:
    """Official VQA accuracy per question kind, where the dataset's vqa table marks kinds (`subset`)."""
    table = read_table(table_path(paths.prepared(ds), "vqa"), "vqa").select(["question_id", "subset"])
    kinds = dict(zip(table.column("question_id").to_pylist(), table.column("subset").to_pylist()))
    per = pred.per_kind(rows, kinds, prior)
    if not per:
        return []
    return [("p", f"VQA accuracy per question kind on {ds} (the vqa table's subset column: easy_vqa's colour / "
                  f"shape questions, COCO-QA's question types)"),
            ("table", ["question kind", "questions", "model", "blind", "prior"], per)]


EXAMPLE_CAPTIONS = {
    "vqa": "question; the model's answer, the most frequent human answer, the blind model's answer",
    "ve": "the image is the premise; hypothesis; the model's label, the true label, the blind model's label",
    "nlvr2": "left and right image side by side; sentence; the model's answer, the truth, the blind model's",
}


def prediction_examples(task: str, ds: str, images: Images) -> list[Block]:
    path = paths.evaluate_examples(task, ds)
    if not path.is_file():
        return []
    ex = json.loads(path.read_text())[:8]
    if not ex:
        return []
    truths = [e["truth"] if isinstance(e["truth"], str) else pred.majority(e["truth"]) if e["truth"] else "?"
              for e in ex]
    titles = [f"{e['text']}\nmodel: {e['prediction']}\ntrue: {t}\nblind: {e['blind']}" for e, t in zip(ex, truths)]
    thumbs = [np.concatenate([images.get(ds, e["images"][0]), np.full((96, 4, 3), 255, np.uint8),
                              images.get(ds, e["images"][1])], axis=1) if task == "nlvr2"
              else images.get(ds, e["images"][0]) for e in ex]
    marks = [e["prediction"] == t for e, t in zip(ex, truths)]
    return [("img", f"examples-{task}-{ds}", fig.thumbnails(thumbs, titles, marks),
             f"{task} examples on {ds}: {EXAMPLE_CAPTIONS[task]} (frame: green where the model is right)")]


def retrieval_examples(ds: str, images: Images, n: int) -> list[Block]:
    path = paths.evaluate_examples("itr", ds)
    if not path.is_file():
        return []
    ex = json.loads(path.read_text())
    out: list[Block] = []
    for e in ex["i2t"][:n]:
        out.append(("img", f"i2t-{e['image']}", fig.thumbnails([images.get(ds, e["image"])], [e["image"]]),
                    "image -> text query"))
        out.append(("list", [("✓ " if c["correct"] else "✗ ") + c["caption"] for c in e["top5"]]))
    for e in ex["t2i"][:n]:
        out.append(("img", f"t2i-{e['truth']}", fig.thumbnails(
            [images.get(ds, c["image"]) for c in e["top5"]], [f"#{i + 1}" for i in range(len(e["top5"]))],
            [c["correct"] for c in e["top5"]]), f"text -> image top 5 for: {e['caption']}"))
    return out


def overlay_blocks(datasets: list[str], n: int, images: Images) -> list[Block]:
    out: list[Block] = [("h2", "segments")]
    for ds in datasets:
        with ShardReader(paths.masks(ds)) as masks:
            ids = masks.ids[:n]
            segs = [decode_png(masks.get(i)["seg.png"]) for i in ids]
        nodes = graph_nodes(ds, ids)
        resize = json.loads(paths.masks_meta(ds).read_text()).get("resize", "squash")   # the masks' own transform
        imgs = [images.get(ds, i, size=s.shape[0], resize=resize) for i, s in zip(ids, segs)]
        titles = [f"{i}: {len(nodes[i])} of {len(np.unique(s[s > 0]))} segments are nodes" if nodes[i] else
                  f"{i}: no node features (features rejected it)" for i, s in zip(ids, segs)]
        out.append(("img", f"segments-{ds}", fig.overlays(imgs, segs, [nodes[i] for i in ids], titles),
                    f"segments of {ds}, each in its own colour; the graph nodes (the largest segments, at most "
                    f"features.max_nodes) numbered by slot; hatched grey: segments left out of the graph"))
    return out


@torch.inference_mode()
def spike_blocks(mcfg: params.ModelParams, pcfg: params.PretrainParams) -> list[Block]:
    """Firing rates per neuron of each SNN layer and a raster of one image, on 32 validation images."""
    C, K = feature_meta(pcfg.datasets)
    model = load_pretrained(mcfg, C, K).eval()
    branches = model.visual.spiking_branches()
    if not branches:
        return [("h2", "spikes"), ("p", f"the model (preset {mcfg.preset} with its knobs) has no spiking branch")]
    val = load_samples(pcfg.datasets, "val")
    batch = PairCollator(val, K, mcfg.max_text_len)([(i, 0) for i in range(min(32, len(val)))])
    snn = branches[0].snn
    captured: list[torch.Tensor] = []
    hooks = [lif.register_forward_hook(lambda _m, _i, o: captured.append(o.detach())) for lif in snn.lifs]
    torch.manual_seed(0)
    out = model.visual(batch.nodes)
    for h in hooks:
        h.remove()
    real = batch.nodes.node_mask
    B, Kb = real.shape
    rates = {}
    for i, o in enumerate(captured):   # (B*T, K, C) with batch as time, else (T, B*K, C)
        o = o.reshape(B, -1, Kb, o.shape[-1]) if snn.carries_state else \
            o.reshape(-1, B, Kb, o.shape[-1]).transpose(0, 1)
        rates[f"layer {i}"] = o[real[:, None, :].expand(-1, o.shape[1], -1)].mean(0).numpy()
    sel = out.spikes[:, 0][:, real[0]]                       # (T, nodes of image 0, M)
    steps = sel.permute(1, 0, 2).reshape(-1, sel.shape[-1]).numpy()
    return [("h2", "spikes"),
            ("img", "firing-rates", fig.firing_histograms(rates), "per-neuron firing rates over 32 validation images"),
            ("img", "raster", fig.raster(steps, f"selector spikes of {val.image_ids[0]}"), "spike raster")]


def energy_blocks() -> list[Block]:
    path = paths.pretrain_eval("main")
    ev = json.loads(path.read_text()) if path.is_file() else {}
    layers = sorted({k.split("/")[1] for k in ev if k.startswith("energy/layer")})
    if not layers:
        return [("h2", "energy"), ("p", "no spiking branch: no energy estimate")]
    rows = [[ly, f"{ev[f'energy/{ly}/firing_rate']:.4f}", f"{ev[f'energy/{ly}/sops']:.0f}",
             f"{ev[f'energy/{ly}/snn_pj'] / 1e6:.3f}", f"{ev[f'energy/{ly}/ann_macs']:.0f}",
             f"{ev[f'energy/{ly}/ann_pj'] / 1e6:.3f}"] for ly in layers]
    rows.append(["SNN total", "", f"{ev['energy/snn_sops']:.0f}", f"{ev['energy/snn_pj'] / 1e6:.3f}",
                 f"{ev['energy/ann_macs']:.0f}", f"{ev['energy/ann_pj'] / 1e6:.3f}"])
    return [("h2", "energy (per image, 45 nm: 0.9 pJ/AC, 4.6 pJ/MAC)"),
            ("table", ["layer", "firing rate", "SOPs", "SNN µJ", "ANN twin MACs", "ANN twin µJ"], rows),
            ("p", f"The rest of the model (dense layers, all tokens) costs at most "
                  f"{ev['energy/rest_of_model_pj_upper_bound'] / 1e6:.1f} µJ per image-text pair.")]


def pretrain_blocks() -> list[Block]:
    runs = {PHASE_NAMES[p]: paths.pretrain_dir(p) / trainer.LOSSES for p in paths.PRETRAIN_PHASES
            if (paths.pretrain_dir(p) / trainer.LOSSES).is_file()}
    out: list[Block] = [("h2", "pretraining")]
    series, starts = fig.phases_on_one_axis(runs)
    if series:
        out.append(("img", "loss-pretrain", fig.metric_panels(series, "optimizer step (warm-up, then main)", starts),
                    "pretraining: one panel per logged metric; the main phase's steps continue the warm-up's"))
    for p, s in paths.PRETRAIN_PHASES.items():
        ev = paths.pretrain_eval(p)
        if ev.is_file():
            e = json.loads(ev.read_text())
            out.append(("p", f"{s}: held-out ITC R@1 i2t {e['itc_r1_i2t']:.3f}, t2i {e['itc_r1_t2i']:.3f} "
                             f"(chance {e['itc_r1_chance']:.3f}), ITM accuracy {e['itm_acc']:.3f}"))
    return out


# ---- the run -------------------------------------------------------------------------
def run() -> str:
    mcfg: params.ModelParams = params.load("model")
    pcfg: params.PretrainParams = params.load("pretrain")
    rcfg: params.ReportParams = params.load("report")
    fcfg: params.FinetuneParams = params.load("finetune")
    set_threads(params.load("evaluate").threads)
    metrics = {}
    for task in paths.TASKS:
        path = paths.task_metrics(task)
        if not path.is_file():
            raise StageError(f"{path} not found: run `dvc repro evaluate@{task}` first")
        metrics[task] = json.loads(path.read_text())
    images = Images()
    summary = table_text(SUMMARY_HEADER, summary_rows(metrics))
    blocks: list[Block] = [("h1", f"GSHN report: preset {mcfg.preset}, size {mcfg.size}"),
                           *header_blocks(Path.cwd(), params.read_yaml()),
                           ("h2", "summary"), ("table", SUMMARY_HEADER, summary_rows(metrics)),
                           ("p", "margin: model minus its text-only (blind) baseline; for retrieval, minus chance.")]
    for task in paths.TASKS:
        blocks += task_blocks(task, metrics[task], images, rcfg.retrieval_examples)
    blocks += pretrain_blocks() + energy_blocks() + spike_blocks(mcfg, pcfg)
    datasets = sorted({ds for t in paths.TASKS for ds in getattr(fcfg, t).datasets})
    blocks += overlay_blocks(datasets, rcfg.overlays, images) + report_section()
    with atomic_dir(paths.report_dir()) as out:
        page, md = render(blocks, out, "GSHN report")
        (out / "index.html").write_text(page)
        (out / "report.md").write_text(md)
        (out / "summary.txt").write_text(summary + "\n")
    log.info("wrote %s and %s\n%s", paths.report_dir() / "index.html", paths.report_dir() / "report.md", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    run_stage("report", __doc__, run, argv, errors=(CheckpointError,))


if __name__ == "__main__":
    main()
