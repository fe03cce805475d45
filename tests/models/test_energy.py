"""Energy: hand-worked SOP and MAC counts, energy = constants x counts, dense MACs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models.energy import E_AC, E_MAC, dense_macs, snn_energy
from models.snn import SNNEncoder


def test_constants() -> None:
    assert (E_AC, E_MAC) == (0.9, 4.6)


def test_hand_worked_counts_and_energy() -> None:
    torch.manual_seed(0)
    T, B, K = 2, 2, 2
    enc = SNNEncoder(3, [4], 2)
    node_mask = torch.tensor([[True, True], [True, False]])      # 3 real nodes
    spikes = torch.zeros(T, B, K, 3)
    spikes[0, 0, 0] = torch.tensor([1.0, 1.0, 0.0])              # 2 spikes
    spikes[1, 0, 1] = torch.tensor([0.0, 1.0, 0.0])              # 1 spike
    spikes[:, 1, 0, 2] = 1.0                                      # 2 spikes
    spikes[:, 1, 1] = 1.0                                         # padded: not counted
    out = enc(spikes, node_mask)
    counts = enc.layer_counts()
    assert counts[0].in_spikes == 5.0 and counts[0].nodes == 3
    assert counts[1].in_spikes == counts[0].out_spikes
    assert counts[1].out_spikes == float(out.detach().sum())

    m = snn_energy(counts)
    # layer 0: 5 input spikes x fan-out 4 over B = 2 images; ANN twin: 3 nodes x 3 x 4 / 2.
    assert m["layer0/sops"] == pytest.approx(5 * 4 / 2)
    assert m["layer0/snn_pj"] == pytest.approx(0.9 * 10)
    assert m["layer0/ann_macs"] == pytest.approx(3 * 3 * 4 / 2)
    assert m["layer0/ann_pj"] == pytest.approx(4.6 * 18)
    assert m["layer0/in_rate"] == pytest.approx(5 / (3 * T * 3))
    # layer 1: fan-in 4, fan-out 2.
    assert m["layer1/sops"] == pytest.approx(counts[0].out_spikes * 2 / 2)
    assert m["layer1/ann_macs"] == pytest.approx(3 * 4 * 2 / 2)
    assert m["layer1/firing_rate"] == pytest.approx(float(out.detach().sum()) / (3 * T * 2))
    assert m["layer0/firing_rate"] == enc.firing_rates()["layer0"]
    assert m["snn_sops"] == pytest.approx(m["layer0/sops"] + m["layer1/sops"])
    assert m["snn_pj"] == pytest.approx(E_AC * m["snn_sops"])
    assert m["ann_macs"] == pytest.approx(18 + 12)
    assert m["ann_pj"] == pytest.approx(E_MAC * 30)
    assert all(isinstance(v, float) for v in m.values())


def test_dense_macs_counts_linear_layers() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.LayerNorm(2))
    assert dense_macs(net, tokens=10) == 10 * (4 * 8 + 8 * 2)
