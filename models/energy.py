"""Energy estimate of the SNN encoder vs its ANN twin, in pJ (45 nm: E_AC = 0.9, E_MAC = 4.6).

For Linear layer l (fan-in n_in, fan-out n_out) of the SNN, per image (B images in the batch):
    SOPs_l   = (binary input events into layer l, over T steps and real nodes) * n_out / B
    E_snn_l  = E_AC * SOPs_l                    (each input spike triggers n_out accumulates)
The first layer's input is the Bernoulli-coded spike train, so it is spike-driven too; tdBN
folds into the weights at inference and adds no operations. The ANN twin runs the same widths
once (no T) on real-valued inputs:
    MACs_l   = (real nodes / B) * n_in * n_out
    E_ann_l  = E_MAC * MACs_l
Dense parts of the model are counted with `dense_macs` and costed at E_MAC.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from torch import nn

from models.snn import LayerCounts

E_AC = 0.9   # pJ per accumulate (45 nm)
E_MAC = 4.6  # pJ per multiply-accumulate (45 nm)


@dataclass(frozen=True)
class LayerEnergy:
    """Per-image operation counts and energy (pJ) of one SNN layer and of its ANN twin."""

    in_rate: float      # input spikes per input neuron per step
    firing_rate: float  # output spikes per LIF neuron per step
    sops: float
    snn_pj: float
    ann_macs: float
    ann_pj: float


def layer_energy(c: LayerCounts) -> LayerEnergy:
    """Per-image SOPs / MACs and energy of one layer (formulas in the module docstring)."""
    sops = c.in_spikes * c.out_features / c.samples
    macs = c.nodes * c.in_features * c.out_features / c.samples
    return LayerEnergy(c.in_rate, c.firing_rate, sops, E_AC * sops, macs, E_MAC * macs)


def snn_energy(counts: Sequence[LayerCounts]) -> dict[str, float]:
    """Flat metrics from `SNNEncoder.layer_counts()`: `layer{i}/<field>` plus SNN and ANN totals."""
    layers = [layer_energy(c) for c in counts]
    out = {f"layer{i}/{k}": v for i, e in enumerate(layers) for k, v in asdict(e).items()}
    out["snn_sops"] = sum(e.sops for e in layers)
    out["snn_pj"] = sum(e.snn_pj for e in layers)
    out["ann_macs"] = sum(e.ann_macs for e in layers)
    out["ann_pj"] = sum(e.ann_pj for e in layers)
    return out


def dense_macs(module: nn.Module, tokens: int) -> int:
    """MACs of every nn.Linear in `module` applied once to each of `tokens` tokens
    (attention score products and other matmuls are not counted)."""
    return tokens * sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))
