"""Semantic memory: spikes select and average memory rows; silent and padded nodes give zeros."""
from __future__ import annotations

import torch

from models.memory import SemanticMemory


def memory_3x2() -> SemanticMemory:
    mem = SemanticMemory(3, 2)
    with torch.no_grad():
        mem.memory.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    return mem


def test_init_shape_and_scale() -> None:
    torch.manual_seed(0)
    mem = SemanticMemory(500, 64)
    assert mem.memory.shape == (500, 64) and mem.memory.requires_grad
    assert abs(float(mem.memory.detach().std()) - 0.02) < 0.002


def test_hand_worked_selection() -> None:
    T = 4
    spikes = torch.zeros(T, 1, 4, 3)
    spikes[:, 0, 0] = torch.tensor([1.0, 0.0, 1.0])       # rates [1, 0, 1] -> rows 0 and 2
    spikes[:2, 0, 1, 0] = 1.0                             # rates [0.5, 0, 1]
    spikes[:, 0, 1, 2] = 1.0
    # slot 2: no spikes at all; slot 3: padded (spikes ignored)
    spikes[:, 0, 3] = 1.0
    node_mask = torch.tensor([[True, True, True, False]])
    out = memory_3x2()(spikes, node_mask)
    assert out.shape == (1, 4, 2) and out.dtype == torch.float32
    assert torch.allclose(out[0, 0], torch.tensor([3.0, 4.0]), atol=1e-6)            # mean of rows 0, 2
    assert torch.allclose(out[0, 1], torch.tensor([0.5 * 1 + 5, 0.5 * 2 + 6]) / 1.5, atol=1e-6)
    assert torch.equal(out[0, 2], torch.zeros(2))                                    # silent: zeros, no NaN
    assert torch.equal(out[0, 3], torch.zeros(2))                                    # padded
    assert torch.isfinite(out).all()


def test_gradient_reaches_memory_and_spikes() -> None:
    mem = memory_3x2()
    spikes = torch.zeros(2, 1, 2, 3)
    spikes[:, 0, 0, 1] = 1.0                              # node 0 selects row 1; node 1 is silent
    spikes.requires_grad_(True)
    mem(spikes, torch.ones(1, 2, dtype=torch.bool)).sum().backward()
    assert mem.memory.grad is not None and mem.memory.grad[1].abs().sum() > 0
    assert mem.memory.grad[[0, 2]].abs().sum() == 0                     # unselected rows untouched
    # Silent node: the 1/T floor gives d out / d spike_tj = Mem_j (row sums 3, 7, 11), not Mem_j / eps.
    assert spikes.grad is not None
    assert torch.allclose(spikes.grad[:, 0, 1], torch.tensor([[3.0, 7.0, 11.0]] * 2))
