"""Named model variants: bundles of knob values over the same modules (never copies of the model).

Each knob is one setting of models/hybrid.py's VisualEncoder (branch layout, fusion ratio r, semantic
memory, the SNN's input), the ITC queue's length, or one phase's objectives (GSHN Algorithm 1: phase 1
ITM+MLM+CL with the SNN frozen, phase 2 + STL; ASH-Nets: phase 1 + MVM, phase 2 + STUA). params.yaml's
`model.<knob>` overrides a preset's value, so every ablation row of both papers is a preset plus overrides
(README). Sizes are separate (`SIZES`), so every preset runs at `tiny` (CPU), `ablation` or `paper` width.
Tokens (grid / box / panoptic masks) are chosen upstream by `segment.backend`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from models.hybrid import Branch, RatioMode, SnnInput

GSHN_WARMUP = ("itc", "itm", "mlm")
GSHN_MAIN = ("itc", "itm", "mlm", "stl")


@dataclass(frozen=True)
class Preset:
    continuous: Branch = "gat"                  # F: GAT over the node graph (GSHN) / MLP or conv (ASH-Nets eq. 4)
    discrete: Branch = "snn"                    # E: spike coding -> SNN -> semantic memory
    ratio: RatioMode = "trainable"              # V' = r * E + F: r = sigmoid(FC(mean F)), a fixed value, or 0
    ratio_value: float = 1.0                    # r when ratio == "fixed"
    memory: bool = True                         # spikes select memory rows; False: linear read-out of the rates
    snn_input: SnnInput = "serial"              # the discrete branch reads F (GSHN) or the node input (ASH eq. 5)
    warmup_objectives: tuple[str, ...] = GSHN_WARMUP
    main_objectives: tuple[str, ...] = GSHN_MAIN
    itc_queue: int = 0                          # past momentum-encoder embeddings as extra ITC negatives; 0 = none

    def visual(self) -> dict[str, Any]:
        """The VisualConfig fields this bundle sets."""
        knobs = asdict(self)
        return {k: knobs[k] for k in ("continuous", "discrete", "ratio", "ratio_value", "memory", "snn_input")}


PRESETS: dict[str, Preset] = {
    "gshn": Preset(),
    # ASH-Nets III.C.1: "image and text queues are used to increase the number of negative examples inspired by
    # MoCo"; GSHN names no queue. The paper gives no length: 1,024 is half an epoch of the default scenes data
    # (2,000 train images), where ALBEF's 65,536 would queue each image dozens of times (set it for COCO + VG)
    "ash": Preset(continuous="mlp", snn_input="parallel", warmup_objectives=(*GSHN_WARMUP, "mvm"),
                  main_objectives=(*GSHN_WARMUP, "mvm", "stua"), itc_queue=1024),
    # GSHN Table V (r): GAT r = 0, GAT+SNN r = 1, SNN (snn_only); Fig. 4: no SMU
    "zero_r": Preset(ratio="zero"),
    "fixed_r": Preset(ratio="fixed"),
    "no_memory": Preset(memory=False),
    # GSHN Table VII (branch layouts): GAT, SNN, GAT+GAT, SNN+SNN
    "gat_only": Preset(discrete="none", main_objectives=GSHN_WARMUP),
    "snn_only": Preset(continuous="none"),
    "gat_gat": Preset(discrete="gat", main_objectives=GSHN_WARMUP),
    "snn_snn": Preset(continuous="snn"),
    # GSHN Table VI (pre-training tasks): baseline, baseline+CL (baseline+CL+STL = gshn)
    "baseline": Preset(warmup_objectives=("itm", "mlm"), main_objectives=("itm", "mlm")),
    "cl": Preset(main_objectives=GSHN_WARMUP),
}

# Widths: `tiny` for CPU runs; `minilm` = the shipped MiniLM-L6 text encoder's width;
# `paper` = GSHN IV.A (12 x 768, 8 heads, M = 3000, T = 10); `ablation` = the papers' ablation
# setting (GSHN IV.C, ASH-Nets V.C: a 3-layer transformer), otherwise `paper`. `layers`, where
# given, replaces the named transformer's depth.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"transformer": "tiny", "d": 128, "M": 256, "T": 4, "snn_hidden": (256,), "gat_heads": 4},
    "minilm": {"transformer": "minilm", "d": 384, "M": 256, "T": 4, "snn_hidden": (384,), "gat_heads": 4},
    "paper": {"transformer": "paper", "d": 768, "M": 3000, "T": 10, "snn_hidden": (1024,), "gat_heads": 8},
    "ablation": {"transformer": "paper", "layers": 3, "d": 768, "M": 3000, "T": 10, "snn_hidden": (1024,),
                 "gat_heads": 8},
}
