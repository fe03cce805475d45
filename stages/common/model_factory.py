"""params.yaml `model` section -> a GSHN model (presets and sizes from models/presets.py), and its optimizer groups."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

from torch import nn

from models.gshn import GSHN, TextSpec
from models.hybrid import VisualConfig
from models.presets import PRESETS, SIZES
from models.text import TransformerConfig, build_tokenizer, load_minilm
from stages.common import paths
from stages.common.cli import StageError
from stages.common.params import ModelParams
from stages.common.weights import load_into
from stages.training import trainer


def text_spec(max_len: int) -> TextSpec:
    tok = build_tokenizer()
    return TextSpec(vocab_size=len(tok), mask_id=tok.mask_token_id, max_len=max_len,
                    special_ids=tuple(tok.all_special_ids))


def visual_config(cfg: ModelParams, feat_dim: int, K: int) -> VisualConfig:
    size, preset = SIZES[cfg.size], PRESETS[cfg.preset]
    base = VisualConfig(feat_dim=feat_dim, d=size["d"], K=K, M=cfg.M or size["M"], T=cfg.T or size["T"],
                        snn_hidden=tuple(size["snn_hidden"]), gat_heads=size["gat_heads"], dropout=cfg.dropout,
                        batch_as_time=cfg.batch_as_time, straight_through=cfg.straight_through,
                        ratio_value=cfg.ratio_value)
    return dataclasses.replace(base, **preset.visual)


def build_model(cfg: ModelParams, feat_dim: int, K: int, phase: int) -> GSHN:
    """The model for pretraining phase 1 or 2 (objectives from the preset)."""
    spec = text_spec(cfg.max_text_len)
    size = SIZES[cfg.size]
    tcfg = TransformerConfig.preset(size["transformer"], vocab_size=spec.vocab_size, max_text_len=cfg.max_text_len,
                                    max_visual_tokens=K, dropout=cfg.dropout)
    preset = PRESETS[cfg.preset]
    try:
        model = GSHN(visual_config(cfg, feat_dim, K), tcfg, spec, preset.phase1 if phase == 1 else preset.phase2)
    except ValueError as e:
        raise StageError(f"model.preset={cfg.preset}: {e}") from None
    if cfg.text_init == "minilm":
        try:
            load_minilm(model.transformer)
        except ValueError as e:
            raise StageError(f"model.text_init=minilm: {e} (use model.size: minilm)") from None
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
