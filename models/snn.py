"""Discrete semantic encoder (GSHN eq. 8-10, ASH-Nets eq. 2-5): spike coding + multi-step LIF SNN.

Node features are turned into Bernoulli spike trains (probabilistic sampling, eq. 10) and run
through Linear -> tdBN -> LIF layers (spikingjelly `activation_based`, multi-step) ending in M
"selector" neurons.

Batch as time: with `batch_as_time=True` the B samples of a batch run one after another as a
single sequence of B*T steps (sample-major), the K node slots being the neurons' batch
dimension, so each (slot, neuron) membrane carries from one sample to the next; the state is
reset once per forward call. With `batch_as_time=False`, and always in eval mode (the evaluation
protocol: a test prediction must not depend on which other samples share its batch), every
sample runs its own T steps from a reset state.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

with warnings.catch_warnings():  # spikingjelly 2.0 calls the deprecated torch.jit.script at import time
    warnings.simplefilter("ignore", FutureWarning)
    from spikingjelly.activation_based import functional, layer, neuron, surrogate


EVAL_NOISE_SEED = 0


def encode_spikes(features: Tensor, T: int, straight_through: bool,
                  generator: torch.Generator | None = None, shared: bool = False) -> Tensor:
    """(B, K, d) features -> (T, B, K, d) binary spikes, P(spike) = sigmoid(features) each step.

    straight_through: the backward pass treats spikes as their rates (d spike / d x = sigmoid'(x));
    otherwise no gradient reaches `features`. shared: every sample uses the same uniform draws,
    from a fixed seed (`generator` is ignored), so a sample's spikes do not depend on its batch.
    """
    p = torch.sigmoid(features)
    if shared:
        fixed = torch.Generator(device=p.device).manual_seed(EVAL_NOISE_SEED)
        u = torch.rand((T, 1, *p.shape[1:]), generator=fixed, device=p.device, dtype=p.dtype)
    else:
        u = torch.rand((T, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
    spikes = (u < p).to(p.dtype)
    # `p - p.detach()` is exactly 0, so the forward value stays exactly binary.
    return spikes + (p - p.detach()) if straight_through else spikes


@dataclass(frozen=True)
class LayerCounts:
    """Spike counts of one Linear -> tdBN -> LIF layer in one forward call (real nodes only)."""

    in_features: int
    out_features: int
    in_spikes: float   # binary events entering the Linear, summed over steps and nodes
    out_spikes: float  # spikes emitted by the LIF neurons
    nodes: int         # real nodes in the batch
    steps: int         # T (time steps per sample)
    samples: int       # B

    @property
    def in_rate(self) -> float:
        return self.in_spikes / max(1, self.nodes * self.steps * self.in_features)

    @property
    def firing_rate(self) -> float:
        return self.out_spikes / max(1, self.nodes * self.steps * self.out_features)


class SNNEncoder(nn.Module):
    """Spikes (T, B, K, d_in) -> selector spikes (T, B, K, n_out): [Linear -> tdBN -> LIF] per layer.

    Surrogate gradient: spikingjelly `surrogate.Sigmoid(alpha)`, whose primitive
    sigmoid(alpha x) = (1 + tanh(alpha x / 2)) / 2 is exactly the papers' tanh-shaped surrogate.
    tdBN (weight initialised to alpha_bn * v_threshold, alpha_bn = 1) normalises over all time
    steps and real nodes only: padded slots neither enter its statistics nor receive current.
    """

    def __init__(self, d_in: int, hidden: Sequence[int], n_out: int, tau: float = 2.0,
                 v_threshold: float = 1.0, batch_as_time: bool = True,
                 surrogate_alpha: float = 4.0) -> None:
        super().__init__()
        widths = [d_in, *hidden, n_out]
        pairs = list(zip(widths[:-1], widths[1:]))
        # No Linear bias: tdBN's shift replaces it.
        self.linears = nn.ModuleList(layer.Linear(a, b, bias=False, step_mode="m") for a, b in pairs)
        self.norms = nn.ModuleList(layer.ThresholdDependentBatchNorm1d(1.0, v_threshold, b)
                                   for _, b in pairs)
        self.lifs = nn.ModuleList(
            neuron.LIFNode(tau=tau, v_threshold=v_threshold, step_mode="m",
                           surrogate_function=surrogate.Sigmoid(alpha=surrogate_alpha))
            for _ in pairs)
        self.batch_as_time = batch_as_time
        self._counts: list[tuple[Tensor, Tensor]] = []
        self._shape: tuple[Tensor, int, int] = (torch.tensor(0), 0, 0)  # (real nodes, T, B), last forward

    def forward(self, spikes_in: Tensor, node_mask: Tensor) -> Tensor:
        functional.reset_net(self)
        T, B, K, _ = spikes_in.shape
        real = node_mask.bool()
        keep = real[None, :, :, None].to(spikes_in.dtype)
        x = spikes_in * keep
        self._counts, self._shape = [], (real.sum(), T, B)  # tensors: no device sync per step
        for linear, norm, lif in zip(self.linears, self.norms, self.lifs):
            current = linear(x)
            picked = norm(current[:, real])  # tdBN on (T, real nodes, C); fp32 under autocast
            normed = picked.new_zeros(current.shape)
            normed[:, real] = picked
            out = self._run_lif(lif, normed) * keep
            self._counts.append((x.detach().count_nonzero(), out.detach().count_nonzero()))
            x = out
        return x

    @property
    def carries_state(self) -> bool:
        """Whether membranes carry from one sample to the next (batch as time, in training only)."""
        return self.batch_as_time and self.training

    def _run_lif(self, lif: nn.Module, current: Tensor) -> Tensor:
        """Run the LIF layer on (T, B, K, C) current in the configured time layout."""
        T, B, K, C = current.shape
        if self.carries_state:  # one sequence of B*T steps, K slots as the neuron batch
            seq = current.transpose(0, 1).reshape(B * T, K, C)
            return lif(seq).reshape(B, T, K, C).transpose(0, 1)
        return lif(current.reshape(T, B * K, C)).reshape(T, B, K, C)

    def layer_counts(self) -> list[LayerCounts]:
        """Per-layer spike counts of the last forward call (for firing rates and energy)."""
        nodes, steps, samples = self._shape
        return [LayerCounts(lin.in_features, lin.out_features, float(i), float(o), int(nodes), steps, samples)
                for lin, (i, o) in zip(self.linears, self._counts)]

    def firing_rates(self) -> dict[str, float]:
        """Mean LIF spike rate per layer in the last forward call, over real nodes."""
        return {f"layer{i}": c.firing_rate for i, c in enumerate(self.layer_counts())}
