"""Stages `pretrain_warmup` (phase 1) and `pretrain` (phase 2) of GSHN Algorithm 1 / ASH-Nets.

phase 1 (`python -m stages.pretrain --phase warmup`): SNN frozen, random batches, the preset's
  phase-1 objectives (ITM + MLM + CL; ASH-Nets adds MVM).
phase 2 (`python -m stages.pretrain --phase main`): starts from the warm weights, SNN unfrozen
  (SGD, momentum 0.9), batches = the ITM-reordered groups of `reorder`, + STL (GSHN) / STUA (ASH).
Outputs under data/checkpoints/<stage>/: model.pt, checkpoint/ (exact resume), metrics.json and
plots/losses.tsv (stages.training.trainer), and eval.json: held-out ITC Recall@1, ITM accuracy, SNN firing
rates and the energy estimate of the spiking encoder beside its ANN twin; metrics/<stage>.json: the
headline numbers (last epoch's losses, held-out ITC R@1, ITM accuracy, spiking share, seconds per epoch of the
training loop, peak resident and CUDA memory) `dvc exp show` compares;
plots/<stage>.tsv: the training log, git-tracked for `dvc plots diff`, on one step axis for both phases
(main's steps continue after the warm-up's).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from models.energy import E_MAC, snn_energy
from models.gshn import GSHN, PretrainBatch, spiking_share
from stages.common import params, paths
from stages.common.cli import Option, progress_enabled, run_stage, set_threads
from stages.common.device import peak_memory_mib, resolve_device
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.headline import write_headline
from stages.common.model_factory import build_model, optim_groups
from stages.common.weights import CheckpointError, load_into
from stages.data.grouping import read_groups
from stages.data.pairs import (
    PairCollator,
    Samples,
    feature_meta,
    grouped_plan,
    load_samples,
    normalise_caption,
    random_plan,
)
from stages.evaluation.metrics import recall_at_k
from stages.training import trainer
from stages.training.metrics_log import shifted_log
from storage.atomic import write_bytes, write_json
from storage.shards import INDEX_NAME

log = logging.getLogger("stages.pretrain")


@torch.inference_mode()
def evaluate(model: GSHN, collate: PairCollator, samples: Samples, batch_size: int) -> dict[str, Any]:
    """Held-out pairs (caption 0 of each image): ITC R@1 both ways, ITM accuracy, the spiking branch's share
    of the visual tokens, firing rates, energy. A caption that is the same text as another image's is a hit
    for both in recall and never that image's ITM negative."""
    model.eval()
    img, txt, counts, shares = [], [], [], []
    itm_correct = itm_total = 0
    caption = [normalise_caption(samples.captions[i][0]) for i in range(len(samples))]
    for start in range(0, len(samples), batch_size):
        spec = [(i, 0) for i in range(start, min(start + batch_size, len(samples)))]
        b = collate(spec)
        vis = model.visual(b.nodes)
        shares.append(float(spiking_share(vis)))
        i_cls, t_cls = model.unimodal(vis.tokens, b.nodes.node_mask, b.text_ids, b.text_mask)
        i_emb, t_emb = model.itc.embed(i_cls, t_cls)
        img.append(i_emb), txt.append(t_emb)
        for branch in model.visual.spiking_branches():
            counts.append(branch.snn.layer_counts())
        hits, scored = _itm_hits(model, b, vis.tokens, [caption[i] for i, _ in spec])
        itm_correct, itm_total = itm_correct + hits, itm_total + scored
    sim = (torch.cat(img) @ torch.cat(txt).T).numpy()
    n = len(samples)
    by_text: dict[str, set[int]] = {}
    for i, c in enumerate(caption):
        by_text.setdefault(c, set()).add(i)
    gt = [by_text[c] for c in caption]
    out: dict[str, Any] = {
        "heldout_pairs": n,
        "itc_r1_i2t": recall_at_k(sim, gt, (1,))[1],
        "itc_r1_t2i": recall_at_k(sim.T, gt, (1,))[1],
        "itc_r1_chance": float(np.mean([len(g) for g in gt])) / n,
        "itm_acc": itm_correct / max(itm_total, 1),
        "spiking_share": float(np.mean(shares)),
    }
    if counts:
        out |= energy_report(model, counts, n)
    return out


def _itm_hits(model: GSHN, b: PretrainBatch, tokens: torch.Tensor, captions: list[str]) -> tuple[int, int]:
    """(correct, scored) ITM answers on each positive pair and on one negative per image: the next
    sample's caption (cyclically) that is a different text."""
    B = len(captions)
    pos = model.itm_logits(b.text_ids, b.text_mask, tokens, b.nodes.node_mask).argmax(1)
    hits = int((pos == 1).sum())
    neg = [next((j % B for j in range(i + 1, i + B) if captions[j % B] != captions[i]), None) for i in range(B)]
    rows = [i for i, j in enumerate(neg) if j is not None]
    if rows:
        cols = torch.tensor([neg[i] for i in rows])
        logits = model.itm_logits(b.text_ids[cols], b.text_mask[cols], tokens[rows], b.nodes.node_mask[rows])
        hits += int((logits.argmax(1) == 0).sum())
    return hits, B + len(rows)


def gradient_report(at_init: dict[str, float], at_end: dict[str, float]) -> dict[str, float]:
    """SNN and continuous-branch gradient norms on one held-out batch before and after training, and their ratio."""
    out: dict[str, float] = {}
    for when, g in (("init", at_init), ("end", at_end)):
        out |= {f"{k}_{when}": v for k, v in g.items()}
        out[f"grad_ratio_snn_continuous_{when}"] = g["grad_norm_snn"] / max(g["grad_norm_continuous"], 1e-12)
    return out


def energy_report(model: GSHN, counts: list[list[Any]], n_images: int) -> dict[str, float]:
    """Spiking encoder energy (0.9 pJ/AC x SOPs) beside its ANN twin (4.6 pJ/MAC), per image."""
    per_batch = [snn_energy(c) for c in counts]
    keys = per_batch[0].keys()
    energy = {f"energy/{k}": float(np.mean([e[k] for e in per_batch])) for k in keys}
    skip = {id(m) for b in model.visual.spiking_branches() for m in b.snn.modules()}
    if model.momentum is not None:  # the momentum encoders only fill the ITC queue in training
        skip |= {id(m) for m in model.momentum.modules()}
    dense = sum(m.in_features * m.out_features for m in model.modules()
                if isinstance(m, nn.Linear) and id(m) not in skip)
    tokens = model.visual.cfg.K + model.text.max_len
    energy["energy/rest_of_model_pj_upper_bound"] = E_MAC * dense * tokens
    energy["images"] = n_images
    return energy


def run(phase: str) -> dict[str, Any]:
    mcfg: params.ModelParams = params.load("model")
    pcfg: params.PretrainParams = params.load("pretrain")
    set_threads(pcfg.threads)
    ph = pcfg.warmup if phase == "warmup" else pcfg.main
    n_phase = 1 if phase == "warmup" else 2
    C, K = feature_meta(pcfg.datasets)
    train = load_samples(pcfg.datasets, "train")
    heldout = load_samples(pcfg.datasets, "val")
    heldout = heldout.subset(list(range(min(pcfg.heldout, len(heldout)))))
    torch.manual_seed(pcfg.seed)
    model = build_model(mcfg, C, K, n_phase)
    inputs = [paths.features(ds) / INDEX_NAME for ds in pcfg.datasets]
    if n_phase == 2:
        warm = paths.pretrained_weights("warmup")
        load_into(model, warm, f"model preset {mcfg.preset}/{mcfg.size}", "dvc repro pretrain_warmup")
        batches = paths.reorder_batches()
        groups = read_groups(batches, train)
        inputs += [warm, batches]

        def plan(epoch: int) -> list:
            return grouped_plan(train, groups, pcfg.seed, epoch)
    else:
        def plan(epoch: int) -> list:
            return random_plan(train, pcfg.batch_size, pcfg.seed, epoch)
    model.freeze_snn(n_phase == 1)
    collate = PairCollator(train, K, mcfg.max_text_len)
    cfg = trainer.TrainConfig(epochs=ph.epochs, warmup_ratio=pcfg.warmup_ratio, grad_clip=pcfg.grad_clip,
                              seed=pcfg.seed, device=pcfg.device, checkpoint_every_steps=pcfg.checkpoint_every_steps,
                              find_unused_parameters=True)
    fp = digest(mcfg.model_dump(), pcfg.model_dump(), phase, code_digest("stages.pretrain"),
                [file_digest(p) if p.is_file() else "missing" for p in inputs])
    out = paths.pretrain_dir(phase)
    log.info("%s: preset %s/%s, %d train images (%d captions without features), objectives %s, %d epochs",
             paths.PRETRAIN_PHASES[phase], mcfg.preset, mcfg.size, len(train), train.missing,
             ",".join(model.objectives), ph.epochs)
    optim = optim_groups(model.parameter_groups(), ph, snn_frozen=n_phase == 1)
    probe = PairCollator(heldout, K, mcfg.max_text_len)([(i, 0) for i in range(min(pcfg.batch_size, len(heldout)))])
    at_init = model.branch_gradient_norms(probe)
    metrics = trainer.fit(model, optim, plan, collate, cfg, out, progress=progress_enabled(), fingerprint=fp)
    speed = speed_report(metrics, resolve_device(pcfg.device, "pretrain.device"))
    if int(os.environ.get("RANK", "0")) == 0:  # after torchrun, only rank 0 evaluates
        model.cpu()
        report = evaluate(model, PairCollator(heldout, K, mcfg.max_text_len), heldout, pcfg.batch_size)
        report |= gradient_report(at_init, model.train().branch_gradient_norms(probe))
        report |= speed
        write_json(paths.pretrain_eval(phase), report)
        log.info("%s: held-out ITC R@1 i2t %.3f t2i %.3f (chance %.3f), ITM acc %.3f", paths.PRETRAIN_PHASES[phase],
                 report["itc_r1_i2t"], report["itc_r1_t2i"], report["itc_r1_chance"], report["itm_acc"])
        metrics |= report
        write_headline(paths.headline(paths.PRETRAIN_PHASES[phase]), headline_of(metrics, model.objectives))
        offset = 0 if n_phase == 1 else warmup_steps(train, pcfg)
        write_bytes(paths.plot_log(paths.PRETRAIN_PHASES[phase]), shifted_log(out / trainer.LOSSES, offset).encode())
    return metrics


def speed_report(metrics: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Seconds of the training loop per epoch (the held-out evaluation runs after it, so is left out) and the
    peak memory so far (`peak_memory_mib`), measured as the loop ends."""
    out = peak_memory_mib(device)
    if metrics["epochs"]:
        out["seconds_per_epoch"] = metrics["wall_time_s"] / metrics["epochs"]
    return out


def warmup_steps(train: Samples, pcfg: params.PretrainParams) -> int:
    """Optimizer steps of the warm-up phase (its plan from the same params and samples, shared out as in
    this run's world size): where the main phase's steps continue on the plots' step axis."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return sum(len(random_plan(train, pcfg.batch_size, pcfg.seed, e)) // world for e in range(pcfg.warmup.epochs))


def headline_of(metrics: dict[str, Any], objectives: tuple[str, ...]) -> dict[str, float]:
    """The last epoch's losses, the held-out figures, and the training loop's speed and peak memory."""
    keys = ("loss", *objectives, "itc_r1_i2t", "itc_r1_t2i", "itm_acc", "spiking_share", "seconds_per_epoch",
            "peak_rss_mib", "peak_cuda_mib")
    return {k: metrics[k] for k in keys if k in metrics}


def main(argv: list[str] | None = None) -> None:
    phase = Option("phase", "pretraining phase", tuple(paths.PRETRAIN_PHASES), paths.PRETRAIN_PHASES.__getitem__)
    run_stage("pretrain", __doc__, run, argv, phase, (trainer.TrainError, CheckpointError))


if __name__ == "__main__":
    main()
