"""Stages `pretrain_warmup` (phase 1) and `pretrain` (phase 2) of GSHN Algorithm 1 / ASH-Nets.

phase 1 (`python -m stages.pretrain --phase warmup`): SNN frozen, random batches, the preset's
  phase-1 objectives (ITM + MLM + CL; ASH-Nets adds MVM).
phase 2 (`python -m stages.pretrain --phase main`): starts from the warm weights, SNN unfrozen
  (SGD, momentum 0.9), batches = the ITM-reordered groups of `reorder`, + STL (GSHN) / STUA (ASH).
Outputs under data/checkpoints/<stage>/: model.pt, checkpoint/ (exact resume), metrics.json and
plots/losses.tsv (stages.training.trainer), and eval.json: held-out ITC Recall@1, ITM accuracy, SNN firing
rates and the energy estimate of the spiking encoder beside its ANN twin.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from models.energy import E_MAC, snn_energy
from models.gshn import GSHN
from stages.common import params, paths
from stages.common.cli import Option, progress_enabled, run_stage, set_threads
from stages.common.fingerprint import code_digest, digest, file_digest
from stages.common.model_factory import build_model, optim_groups
from stages.common.weights import CheckpointError, load_into
from stages.data.grouping import read_groups
from stages.data.pairs import PairCollator, Samples, feature_meta, grouped_plan, load_samples, random_plan
from stages.evaluation.metrics import recall_at_k
from stages.training import trainer
from storage.atomic import write_json
from storage.shards import INDEX_NAME

log = logging.getLogger("stages.pretrain")


@torch.inference_mode()
def evaluate(model: GSHN, collate: PairCollator, samples: Samples, batch_size: int) -> dict[str, Any]:
    """Held-out pairs (caption 0 of each image): ITC R@1 both ways, ITM accuracy, firing rates, energy."""
    model.eval()
    img, txt, itm_correct, counts = [], [], 0, []
    for start in range(0, len(samples), batch_size):
        spec = [(i, 0) for i in range(start, min(start + batch_size, len(samples)))]
        b = collate(spec)
        vis = model.visual(b.nodes)
        i_cls, t_cls = model.unimodal(vis.tokens, b.nodes.node_mask, b.text_ids, b.text_mask)
        i_emb, t_emb = model.itc.embed(i_cls, t_cls)
        img.append(i_emb), txt.append(t_emb)
        for branch in model.visual.spiking_branches():
            counts.append(branch.snn.layer_counts())
        if len(spec) > 1:  # positives vs the next sample's caption as a negative
            shift = torch.roll(torch.arange(len(spec)), 1)
            pos = model.itm_logits(b.text_ids, b.text_mask, vis.tokens, b.nodes.node_mask).argmax(1)
            neg = model.itm_logits(b.text_ids[shift], b.text_mask[shift], vis.tokens, b.nodes.node_mask).argmax(1)
            itm_correct += int((pos == 1).sum() + (neg == 0).sum())
    sim = (torch.cat(img) @ torch.cat(txt).T).numpy()
    n = len(samples)
    gt = [{i} for i in range(n)]
    out: dict[str, Any] = {
        "heldout_pairs": n,
        "itc_r1_i2t": recall_at_k(sim, gt, (1,))[1],
        "itc_r1_t2i": recall_at_k(sim.T, gt, (1,))[1],
        "itc_r1_chance": 1.0 / n,
        "itm_acc": itm_correct / (2 * n),
    }
    if counts:
        out |= energy_report(model, counts, n)
    return out


def energy_report(model: GSHN, counts: list[list[Any]], n_images: int) -> dict[str, float]:
    """Spiking encoder energy (0.9 pJ/AC x SOPs) beside its ANN twin (4.6 pJ/MAC), per image."""
    per_batch = [snn_energy(c) for c in counts]
    keys = per_batch[0].keys()
    energy = {f"energy/{k}": float(np.mean([e[k] for e in per_batch])) for k in keys}
    snn_ids = {id(m) for b in model.visual.spiking_branches() for m in b.snn.modules()}
    dense = sum(m.in_features * m.out_features for m in model.modules()
                if isinstance(m, nn.Linear) and id(m) not in snn_ids)
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
    metrics = trainer.fit(model, optim, plan, collate, cfg, out, progress=progress_enabled(), fingerprint=fp)
    if int(os.environ.get("RANK", "0")) == 0:  # after torchrun, only rank 0 evaluates
        model.cpu()
        report = evaluate(model, PairCollator(heldout, K, mcfg.max_text_len), heldout, pcfg.batch_size)
        write_json(paths.pretrain_eval(phase), report)
        log.info("%s: held-out ITC R@1 i2t %.3f t2i %.3f (chance %.3f), ITM acc %.3f", paths.PRETRAIN_PHASES[phase],
                 report["itc_r1_i2t"], report["itc_r1_t2i"], report["itc_r1_chance"], report["itm_acc"])
        metrics |= report
    return metrics


def main(argv: list[str] | None = None) -> None:
    phase = Option("phase", "pretraining phase", tuple(paths.PRETRAIN_PHASES), paths.PRETRAIN_PHASES.__getitem__)
    run_stage("pretrain", __doc__, run, argv, phase, (trainer.TrainError, CheckpointError))


if __name__ == "__main__":
    main()
