"""params.yaml `model` section -> a GSHN model (presets, knobs and sizes from models/presets.py), and its optimizer
groups."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from models.gshn import GSHN, SPIKE_OBJECTIVES, TextSpec
from models.hybrid import VisualConfig
from models.presets import PRESETS, SIZES, Preset
from models.text import TransformerConfig, build_tokenizer, load_minilm
from stages.common import paths
from stages.common.cli import StageError
from stages.common.params import ModelParams, ParamsError
from stages.common.weights import load_into
from stages.training import trainer


def text_spec(max_len: int) -> TextSpec:
    tok = build_tokenizer()
    return TextSpec(vocab_size=len(tok), mask_id=tok.mask_token_id, max_len=max_len,
                    special_ids=tuple(tok.all_special_ids))


KNOBS = ("continuous", "discrete", "ratio", "ratio_value", "memory", "snn_input", "warmup_objectives",
         "main_objectives", "itc_queue")


def resolved_knobs(cfg: ModelParams) -> dict[str, Any]:
    """The knob values the model is built with (preset + overrides), as JSON: what a finetuned model's
    meta.json records, so that evaluation refuses weights of another variant with the same preset name."""
    out = knobs(cfg)
    return {k: list(v) if isinstance(v := getattr(out, k), tuple) else v for k in KNOBS}


def knobs(cfg: ModelParams) -> Preset:
    """`model.preset`'s bundle with the knobs params.yaml sets; a ParamsError names the keys of a combination
    that cannot act (no branch, a knob without the part it sets, a spike objective without spikes)."""
    given = {k: getattr(cfg, k) for k in KNOBS if getattr(cfg, k) is not None}
    values = given | {k: tuple(v) for k, v in given.items() if k.endswith("_objectives")}
    if "memory" in given:
        values["memory"] = given["memory"] == "on"
    out = dataclasses.replace(PRESETS[cfg.preset], **values)
    if "itc" not in out.warmup_objectives + out.main_objectives and "itc_queue" not in given:
        out = dataclasses.replace(out, itc_queue=0)    # a preset's queue with ITC off (ASH Fig. 5 "Base") feeds none
    problems = _problems(out, set(given))
    if problems:
        shown = ", ".join(f"{k}={_show(getattr(out, k))}" for k in KNOBS[:6])
        raise ParamsError(f"params.yaml: model: {'; '.join(problems)} (preset {cfg.preset} with the overrides "
                          f"gives {shown})")
    return out


def _show(v: object) -> str:
    """A knob's value as params.yaml spells it (memory: on/off)."""
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


def _problems(k: Preset, given: set[str]) -> list[str]:
    """What is wrong with the resolved knobs `k`; `given`: the knobs params.yaml sets (a preset's own value
    for a part it lacks, e.g. gat_only's ratio, is no error)."""
    if k.continuous == "none" and k.discrete == "none":
        return ["model.continuous and model.discrete are both none: at least one branch must be on"]
    both = "none" not in (k.continuous, k.discrete)
    spiking = "snn" in (k.continuous, k.discrete)
    acts = {"ratio": (both, "needs both branches on"),
            "ratio_value": (both and k.ratio == "fixed", "acts only with model.ratio=fixed and both branches on"),
            "memory": (spiking, "needs a spiking branch (model.continuous or model.discrete = snn)"),
            "snn_input": (both, "needs both branches on (it picks what the discrete branch reads)")}
    out = [f"model.{key}={_show(getattr(k, key))} {why}" for key, (ok, why) in acts.items() if key in given and not ok]
    if "itc_queue" in given and k.itc_queue and "itc" not in k.warmup_objectives + k.main_objectives:
        out.append(f"model.itc_queue={k.itc_queue} adds ITC negatives, but neither model.warmup_objectives nor "
                   f"model.main_objectives has itc")
    for key in ("warmup_objectives", "main_objectives"):
        needs = sorted(set(getattr(k, key)) & set(SPIKE_OBJECTIVES))
        if needs and not spiking:
            out.append(f"model.{key} has {needs}, which need a spiking branch: set model.{key} without them, "
                       f"or model.continuous or model.discrete to snn")
    return out


def visual_config(cfg: ModelParams, feat_dim: int, K: int) -> VisualConfig:
    size = SIZES[cfg.size]
    return VisualConfig(feat_dim=feat_dim, d=size["d"], K=K, M=cfg.M or size["M"], T=cfg.T or size["T"],
                        snn_hidden=tuple(size["snn_hidden"]), gat_heads=size["gat_heads"], dropout=cfg.dropout,
                        batch_as_time=cfg.batch_as_time, straight_through=cfg.straight_through,
                        **knobs(cfg).visual())


def transformer_config(cfg: ModelParams, vocab_size: int, K: int) -> TransformerConfig:
    """The size's transformer; `layers` where the size gives it (ablation: 3)."""
    size = SIZES[cfg.size]
    tcfg = TransformerConfig.preset(size["transformer"], vocab_size=vocab_size, max_text_len=cfg.max_text_len,
                                    max_visual_tokens=K, dropout=cfg.dropout)
    return dataclasses.replace(tcfg, layers=size.get("layers", tcfg.layers))


def build_model(cfg: ModelParams, feat_dim: int, K: int, phase: int) -> GSHN:
    """The model for pretraining phase 1 (warmup) or 2 (main) with that phase's objectives."""
    spec = text_spec(cfg.max_text_len)
    chosen = knobs(cfg)
    objectives = chosen.warmup_objectives if phase == 1 else chosen.main_objectives
    try:
        model = GSHN(visual_config(cfg, feat_dim, K), transformer_config(cfg, spec.vocab_size, K), spec, objectives,
                     itc_queue=chosen.itc_queue)
    except ValueError as e:
        raise StageError(f"model.preset={cfg.preset}: {e}") from None
    if cfg.text_init == "minilm":
        try:
            load_minilm(model.transformer)
        except ValueError as e:
            raise StageError(f"model.text_init=minilm: {e} (use model.size: minilm)") from None
        model.sync_momentum()
    return model


def load_pretrained(mcfg: ModelParams, C: int, K: int, path: Path | None = None) -> GSHN:
    """The phase-2 model of `model.preset/size` with the pretrained weights; a mismatch is a StageError."""
    path = path or paths.pretrained_weights()
    model = build_model(mcfg, C, K, phase=2)
    load_into(model, path, f"a model trained with model preset {mcfg.preset!r}, size {mcfg.size!r} and features of "
                           f"{C} channels x {K} slots", "dvc repro pretrain")
    return model


def initial_model(mcfg: ModelParams, C: int, K: int, init: str) -> GSHN:
    """The model a finetuning starts from: the pretrained weights, or (the no-pretraining control) the
    same architecture freshly initialised from the current torch seed."""
    if init == "random":
        return build_model(mcfg, C, K, phase=2)
    return load_pretrained(mcfg, C, K)


class OptimSettings(Protocol):
    lr: float
    weight_decay: float
    snn_lr: float
    snn_weight_decay: float


def optim_groups(params: dict[str, list[nn.Parameter]], cfg: OptimSettings,
                 snn_frozen: bool = False) -> list[trainer.OptimGroup]:
    """The papers' optimisers: AdamW for the transformer, GAT and heads (`main`); SGD momentum 0.9
    for the SNN (`snn`, frozen in pretraining phase 1). `params` is a model's parameter_groups()."""
    out = [trainer.OptimGroup("main", params["main"], "adamw", cfg.lr, cfg.weight_decay)]
    if params["snn"]:
        out.append(trainer.OptimGroup("snn", params["snn"], "sgd", cfg.snn_lr, cfg.snn_weight_decay,
                                      momentum=0.9, frozen=snn_frozen))
    return out
