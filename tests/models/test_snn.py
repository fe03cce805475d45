"""Spike coding and the multi-step SNN encoder: shapes, binary spikes, padding, gradients,
batch-as-time state carry, reset per call, tdBN statistics over real nodes only."""
from __future__ import annotations

import torch

from models.snn import SNNEncoder, encode_spikes


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def mask(B: int, K: int, real: list[int]) -> torch.Tensor:
    """(B, K) node mask with the first real[b] slots of sample b real."""
    return torch.arange(K)[None, :] < torch.tensor(real)[:, None]


# ---- encode_spikes -----------------------------------------------------------------------

def test_encode_spikes_shape_and_binary() -> None:
    x = torch.randn(2, 3, 4)
    for st in (False, True):
        s = encode_spikes(x.clone().requires_grad_(st), T=5, straight_through=st, generator=gen())
        assert s.shape == (5, 2, 3, 4) and s.dtype == torch.float32
        assert is_binary(s)


def test_encode_spikes_rate_approaches_sigmoid() -> None:
    x = torch.linspace(-3, 3, 13).reshape(1, 1, 13)
    s = encode_spikes(x, T=20000, straight_through=False, generator=gen(1))
    assert torch.allclose(s.mean(0), torch.sigmoid(x), atol=0.015)


def test_encode_spikes_seeded_generator_reproducible() -> None:
    x = torch.randn(2, 3, 4)
    a = encode_spikes(x, 7, False, generator=gen(3))
    b = encode_spikes(x, 7, False, generator=gen(3))
    assert torch.equal(a, b)


def test_straight_through_gradient_is_sigmoid_derivative() -> None:
    x = torch.randn(2, 3, 4, requires_grad=True)
    T = 6
    encode_spikes(x, T, straight_through=True, generator=gen()).sum().backward()
    p = torch.sigmoid(x.detach())
    assert x.grad is not None and bool((x.grad != 0).all())
    assert torch.allclose(x.grad, T * p * (1 - p))


def test_no_straight_through_blocks_gradient() -> None:
    x = torch.randn(2, 3, 4, requires_grad=True)
    assert not encode_spikes(x, 4, straight_through=False, generator=gen()).requires_grad


# ---- SNNEncoder ---------------------------------------------------------------------------

def test_encoder_shapes_binary_and_padding() -> None:
    torch.manual_seed(0)
    T, B, K = 4, 3, 5
    enc = SNNEncoder(6, [8], 5)
    node_mask = mask(B, K, [5, 2, 3])
    spikes_in = encode_spikes(torch.randn(B, K, 6), T, False, generator=gen())
    spikes_in[:, ~node_mask] = 1.0                     # garbage at padded slots must be ignored
    out = enc(spikes_in, node_mask)
    assert out.shape == (T, B, K, 5) and out.dtype == torch.float32
    assert is_binary(out) and out.sum() > 0
    assert out[:, ~node_mask].abs().sum() == 0
    rates = enc.firing_rates()
    assert set(rates) == {"layer0", "layer1"}
    real = int(node_mask.sum())
    assert rates["layer1"] == float(out.detach().sum()) / (T * real * 5)
    assert all(0.0 <= r <= 1.0 for r in rates.values())


def test_gradient_reaches_weights_and_input() -> None:
    torch.manual_seed(0)
    T, B, K = 4, 2, 3
    enc = SNNEncoder(6, [8], 4)
    node_mask = mask(B, K, [3, 2])
    feats = torch.randn(B, K, 6, requires_grad=True)
    out = enc(encode_spikes(feats, T, straight_through=True, generator=gen()), node_mask)
    (out * torch.randn_like(out)).sum().backward()
    for lin in enc.linears:
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    assert feats.grad is not None
    assert feats.grad[node_mask].abs().sum() > 0
    assert feats.grad[~node_mask].abs().sum() == 0     # padded slots inject nothing


def one_neuron(batch_as_time: bool, training: bool = True) -> SNNEncoder:
    """1 input -> 1 LIF (tau 2, threshold 1), weight 1.2; tdBN in eval mode is ~identity."""
    enc = SNNEncoder(1, [], 1, batch_as_time=batch_as_time).train(training)
    enc.norms.eval()
    with torch.no_grad():
        enc.linears[0].weight.fill_(1.2)
    return enc


def test_batch_as_time_carries_membrane_across_samples() -> None:
    # Constant current 1.2 from rest: v = 0.6, 0.9, 1.05 (spike -> 0), 0.6  => spikes 0 0 1 0,
    # ending at v = 0.6. Sample 2 starting from v = 0.6: 0.9, 1.05 (spike), 0.6, 0.9 => 0 1 0 0.
    T, node_mask = 4, torch.ones(2, 1, dtype=torch.bool)
    strong_first = torch.ones(T, 2, 1, 1)
    silent_first = strong_first.clone()
    silent_first[:, 0] = 0.0
    carry = one_neuron(batch_as_time=True)
    after_strong = carry(strong_first, node_mask)[:, 1].flatten().tolist()
    after_silent = carry(silent_first, node_mask)[:, 1].flatten().tolist()
    assert after_silent == [0.0, 0.0, 1.0, 0.0]
    assert after_strong == [0.0, 1.0, 0.0, 0.0]
    for reset in (one_neuron(batch_as_time=False), one_neuron(batch_as_time=True, training=False)):
        assert reset(strong_first, node_mask)[:, 1].flatten().tolist() == [0.0, 0.0, 1.0, 0.0]
        assert reset(silent_first, node_mask)[:, 1].flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_reset_per_sample_is_independent_of_other_samples() -> None:
    torch.manual_seed(0)
    T, K = 5, 4
    enc = SNNEncoder(6, [8], 5, batch_as_time=False).eval()
    second = encode_spikes(torch.randn(1, K, 6), T, False, generator=gen(1))
    outs = []
    for seed in (2, 3):
        first = encode_spikes(torch.randn(1, K, 6) * 3, T, False, generator=gen(seed))
        outs.append(enc(torch.cat([first, second], 1), torch.ones(2, K, dtype=torch.bool))[:, 1])
    assert torch.equal(outs[0], outs[1])
    # A single sample runs identically in both layouts.
    carry = SNNEncoder(6, [8], 5, batch_as_time=True).eval()
    carry.load_state_dict(enc.state_dict())
    one = torch.ones(1, K, dtype=torch.bool)
    assert torch.equal(carry(second, one), enc(second, one))


def test_state_is_reset_between_forward_calls() -> None:
    torch.manual_seed(0)
    T, B, K = 4, 3, 4
    enc = SNNEncoder(6, [8], 5, batch_as_time=True)
    node_mask = mask(B, K, [4, 4, 2])
    spikes_in = encode_spikes(torch.randn(B, K, 6), T, False, generator=gen())
    for norm in enc.norms:
        norm.momentum = None        # cumulative average: running stats = this batch's statistics
    first = enc(spikes_in, node_mask)
    assert first.sum() > 0
    assert torch.equal(first, enc(spikes_in, node_mask))
    enc.eval()
    first = enc(spikes_in, node_mask)
    assert first.sum() > 0
    assert torch.equal(first, enc(spikes_in, node_mask))


def test_tdbn_statistics_use_real_nodes_only() -> None:
    torch.manual_seed(0)
    T, B = 4, 2
    spikes = encode_spikes(torch.randn(B, 3, 6), T, False, generator=gen())
    padded = torch.cat([spikes, torch.ones(T, B, 2, 6)], 2)      # two padded slots per sample
    a, b = SNNEncoder(6, [8], 5), SNNEncoder(6, [8], 5)
    b.load_state_dict(a.state_dict())
    out_a = a(spikes, torch.ones(B, 3, dtype=torch.bool))
    out_b = b(padded, mask(B, 5, [3, 3]))
    assert torch.equal(out_a, out_b[:, :, :3])
    for na, nb in zip(a.norms, b.norms):
        assert torch.allclose(na.running_mean, nb.running_mean)
        assert torch.allclose(na.running_var, nb.running_var)


def test_tdbn_eval_uses_frozen_running_stats() -> None:
    torch.manual_seed(0)
    enc = SNNEncoder(6, [8], 5)
    enc(encode_spikes(torch.randn(2, 4, 6), 4, False, generator=gen()), torch.ones(2, 4, dtype=torch.bool))
    stats = [n.running_mean.clone() for n in enc.norms]
    assert any(s.abs().sum() > 0 for s in stats)                  # training updated them
    enc.eval()
    single = encode_spikes(torch.randn(1, 2, 6), 1, False, generator=gen(1))   # 1 real node, T = 1
    out = enc(single, mask(1, 2, [1]))
    assert out.shape == (1, 1, 2, 5)
    assert all(torch.equal(s, n.running_mean) for s, n in zip(stats, enc.norms))
