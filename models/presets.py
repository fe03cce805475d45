"""Named model variants: settings of the same modules (never copies of the model).

A preset fixes the branch layout and the objectives of the two pretraining phases
(GSHN Algorithm 1: phase 1 ITM+MLM+CL with the SNN frozen, phase 2 + STL; ASH-Nets:
phase 1 + MVM, phase 2 + STUA). Sizes are separate (`SIZES`), so every preset runs at
`tiny` (CPU) or `paper` width. Tokens (grid / box / panoptic masks) are chosen upstream by
`segment.backend`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    visual: dict[str, Any] = field(default_factory=dict)   # VisualConfig overrides
    phase1: tuple[str, ...] = ("itc", "itm", "mlm")
    phase2: tuple[str, ...] = ("itc", "itm", "mlm", "stl")


PRESETS: dict[str, Preset] = {
    "gshn": Preset(),
    "ash": Preset({"continuous": "mlp"}, ("itc", "itm", "mlm", "mvm"), ("itc", "itm", "mlm", "mvm", "stua")),
    # GSHN ablations (Tables IV-VI): branch layout
    "gat_only": Preset({"discrete": "none"}, phase2=("itc", "itm", "mlm")),
    "snn_only": Preset({"continuous": "none"}),
    "gat_gat": Preset({"discrete": "gat"}, phase2=("itc", "itm", "mlm")),
    "snn_snn": Preset({"continuous": "snn"}),
    "fixed_r": Preset({"ratio": "fixed"}),        # r = model.ratio_value (GSHN Table V: "GAT+SNN, r=1")
    "no_memory": Preset({"memory": False}),
    # GSHN task-set ablation (Table VII): baseline / +CL / +CL+STL (= gshn)
    "baseline": Preset(phase1=("itm", "mlm"), phase2=("itm", "mlm")),
    "cl": Preset(phase2=("itc", "itm", "mlm")),
}

# Widths: `tiny` for CPU runs; `minilm` = the shipped MiniLM-L6 text encoder's width;
# `paper` = GSHN IV.A (12 x 768, 8 heads, M = 3000, T = 10).
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"transformer": "tiny", "d": 128, "M": 256, "T": 4, "snn_hidden": (256,), "gat_heads": 4},
    "minilm": {"transformer": "minilm", "d": 384, "M": 256, "T": 4, "snn_hidden": (384,), "gat_heads": 4},
    "paper": {"transformer": "paper", "d": 768, "M": 3000, "T": 10, "snn_hidden": (1024,), "gat_heads": 8},
}
