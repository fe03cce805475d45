"""Pretraining objectives: hand-worked values, masking rules, hard negatives, and every loss
falling when a head overfits a tiny fixed batch."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.objectives import (
    ContrastiveHead,
    EmbeddingQueue,
    ITMHead,
    MLMHead,
    MVMHead,
    STLHead,
    STUAHead,
    focal_loss,
    info_nce,
    itm_accuracy,
    itm_loss,
    mask_tokens,
    mlm_loss,
    mvm_loss,
    mvm_targets,
    queue_logits,
    sample_hard_negatives,
    select_mvm_nodes,
    select_stl_nodes,
    stl_loss,
    stl_targets,
)

D, K, M, L, V = 32, 6, 10, 8, 50


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def overfit(params: list[torch.Tensor], loss_fn: Callable[[], torch.Tensor], steps: int = 100,
            lr: float = 1e-2) -> tuple[float, float]:
    """Adam on `params` for `steps`; -> (initial loss, final loss)."""
    opt = torch.optim.Adam(params, lr=lr)
    first = None
    for _ in range(steps):
        loss = loss_fn()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, loss_fn().item()


# ---------------------------------------------------------------- ITC

def identity_head(temp: float) -> ContrastiveHead:
    """Projections = identity (d = dim = 32), so one-hot inputs give orthonormal embeddings."""
    head = ContrastiveHead(D, dim=D, temp=temp)
    with torch.no_grad():
        for proj in (head.img_proj, head.txt_proj):
            proj.weight.copy_(torch.eye(D))
            proj.bias.zero_()
    return head


def test_itc_uninformative_embeddings_give_log_b() -> None:
    torch.manual_seed(0)
    head = ContrastiveHead(D)
    x = torch.randn(1, D).expand(5, D)
    loss, sim = head(x, x)
    assert loss.item() == pytest.approx(math.log(5), abs=1e-5)
    assert sim.shape == (5, 5) and not sim.requires_grad


def test_itc_aligned_embeddings_low_temperature_near_zero() -> None:
    x = torch.eye(D)[:4]
    head = identity_head(temp=0.01)
    loss, sim = head(x, x)
    assert loss.item() < 1e-6
    assert torch.allclose(sim, torch.eye(4) / 0.01, atol=1e-3)     # cosine / temperature


def test_temperature_stays_in_clamp_range() -> None:
    head = identity_head(temp=0.07)
    with torch.no_grad():
        head.temperature.log_temp.fill_(math.log(10.0))
    assert head.temperature().item() == pytest.approx(0.5)
    # perfect alignment pushes the temperature down; a large lr overshoots the lower bound
    x = torch.eye(D)[:4]
    opt = torch.optim.SGD([head.temperature.log_temp], lr=1e3)
    for _ in range(5):
        loss, _ = head(x, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert 0.001 - 1e-9 <= head.temperature().item() <= 0.5 + 1e-9
    assert head.temperature().item() == pytest.approx(0.001)


def test_same_caption_pairs_are_not_itc_negatives() -> None:
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    same = torch.eye(4, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True        # pairs 0 and 1 share a caption text
    temp = torch.tensor(0.1)
    masked, sim = info_nce(img, txt, temp, same)
    plain, sim_plain = info_nce(img, txt, temp)
    assert torch.equal(sim, sim_plain)    # the similarities handed to ITM stay unmasked
    keep = ~(same & ~torch.eye(4, dtype=torch.bool))
    by_hand = sum(F.cross_entropy(m[i][keep[i]][None], torch.tensor([int(keep[i][:i].sum())]))
                  for m in (sim, sim.T) for i in range(4)) / 8
    assert masked.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert masked.item() != pytest.approx(plain.item())


def _unit(n: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, D, generator=gen(seed)), dim=-1)


def test_itc_queue_adds_its_negatives_to_both_directions() -> None:
    """With a queue of Q, each direction's logits are B + Q wide: the in-batch ones, then every slot's
    (-inf while empty); an empty queue leaves the loss as it was, a filled one changes it. Queue 0: none."""
    B, Q = 4, 6
    head = ContrastiveHead(D, dim=D, queue=Q)
    img, txt = _unit(B, 0), _unit(B, 1)
    plain = info_nce(img, txt, head.temperature())[0]
    assert ContrastiveHead(D, dim=D).queue is None
    assert torch.allclose(head.loss(img, txt)[0], plain)             # empty: every slot left out
    head.queue.enqueue(_unit(3, 2), _unit(3, 3), None, None)
    queued = head.queue.negatives(None, None)
    raw = img @ txt.T / head.temperature()
    i2t, t2i = queue_logits(raw, img, txt, head.temperature(), queued)
    assert i2t.shape == t2i.shape == (B, B + Q)
    assert torch.equal(i2t[:, :B], raw) and torch.equal(t2i[:, :B], raw.T)
    assert torch.allclose(i2t[:, B:B + 3], img @ head.queue.txt[:3].T / head.temperature())
    assert torch.allclose(t2i[:, B:B + 3], txt @ head.queue.img[:3].T / head.temperature())
    assert torch.isinf(i2t[:, B + 3:]).all() and torch.isinf(t2i[:, B + 3:]).all()
    loss, sim = head.loss(img, txt)
    assert loss > plain and sim.shape == (B, B)                        # more negatives, more to tell apart
    want = (F.cross_entropy(i2t, torch.arange(B)) + F.cross_entropy(t2i, torch.arange(B))) / 2
    assert torch.allclose(loss, want)


def test_itc_queue_is_first_in_first_out() -> None:
    queue = EmbeddingQueue(6, D)
    batches = [_unit(4, 10), _unit(4, 11)]
    for i, b in enumerate(batches):
        queue.enqueue(b, -b, torch.arange(4) + 10 * i, None)
    a, b = batches
    assert torch.equal(queue.img, torch.cat([b[2:], a[2:], b[:2]]))    # b[0:2] in slots 4-5, b[2:4] over a[0:2]
    assert torch.equal(queue.txt, -queue.img)
    assert queue.image_key.tolist() == [12, 13, 2, 3, 10, 11] and queue.caption_key.tolist() == [-1] * 6
    assert (int(queue.ptr), int(queue.count)) == (2, 6)
    longer = _unit(8, 12)
    queue.enqueue(longer, longer, None, None)                          # longer than the queue: its last 6 rows
    assert torch.equal(queue.img, torch.cat([longer[6:], longer[2:6]])) and int(queue.ptr) == 2


def test_queued_pairs_of_a_rows_own_image_or_caption_are_no_negatives() -> None:
    """An earlier epoch's pair of the same image, or the same caption text of another image, is no negative
    (as same-caption pairs are not within the batch)."""
    queue = EmbeddingQueue(5, D)
    queue.enqueue(_unit(4, 0), _unit(4, 1), torch.tensor([7, 8, 9, 10]), torch.tensor([70, 80, 90, 100]))
    excluded = queue.negatives(torch.tensor([7, 11]), torch.tensor([71, 90])).excluded
    assert excluded.tolist() == [[True, False, False, False, True], [False, False, True, False, True]]
    assert queue.negatives(None, None).excluded.tolist() == [[False] * 4 + [True]]


def test_itc_overfits() -> None:
    torch.manual_seed(0)
    head = ContrastiveHead(D)
    img, txt = torch.randn(4, D), torch.randn(4, D)
    first, last = overfit(list(head.parameters()), lambda: head(img, txt)[0])
    assert last < 0.5 * first


# ---------------------------------------------------------------- ITM

def test_hard_negatives_never_positive_and_b2() -> None:
    torch.manual_seed(0)
    sim = torch.randn(6, 6) * 3 + 20 * torch.eye(6)   # the positive is by far the most similar
    g = gen()
    for _ in range(50):
        neg_t, neg_i = sample_hard_negatives(sim, g)
        assert neg_t.dtype == torch.long and neg_t.shape == (6,) and neg_i.shape == (6,)
        assert (neg_t != torch.arange(6)).all() and (neg_i != torch.arange(6)).all()
    neg_t, neg_i = sample_hard_negatives(torch.randn(2, 2), g)
    assert neg_t.tolist() == [1, 0] and neg_i.tolist() == [1, 0]
    with pytest.raises(ValueError):
        sample_hard_negatives(torch.zeros(1, 1))


def test_hard_negatives_skip_same_caption_pairs() -> None:
    sim = torch.zeros(4, 4)
    sim[0, 1] = sim[1, 0] = 50.0                              # 0 and 1 would be each other's hardest negative
    same = torch.eye(4, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True                            # ... but they share a caption text
    g = gen(0)
    for _ in range(30):
        neg_t, neg_i = sample_hard_negatives(sim, g, exclude=same)
        assert neg_t[0] not in (0, 1) and neg_t[1] not in (0, 1) and neg_i[0] not in (0, 1)
    everyone = torch.ones(3, 3, dtype=torch.bool)              # all captions equal: fall back to any other sample
    neg_t, _ = sample_hard_negatives(torch.zeros(3, 3), g, exclude=everyone)
    assert (neg_t != torch.arange(3)).all()


def test_hard_negatives_follow_similarity() -> None:
    torch.manual_seed(1)
    sim = torch.randn(5, 5) + 30 * torch.eye(5)
    hard = torch.tensor([3, 0, 4, 1, 2])                    # image i's hardest other text
    sim[torch.arange(5), hard] = 15.0                        # peaked: others ~ N(0, 1)
    g = gen(3)
    picks_t = torch.stack([sample_hard_negatives(sim, g)[0] for _ in range(200)])
    picks_i = torch.stack([sample_hard_negatives(sim, g)[1] for _ in range(200)])
    assert (picks_t == hard).float().mean() > 0.98
    hard_t2i = torch.empty(5, dtype=torch.long)
    hard_t2i[hard] = torch.arange(5)                         # text j's hardest image
    assert (picks_i == hard_t2i).float().mean() > 0.98


def test_itm_head_overfits() -> None:
    torch.manual_seed(0)
    head = ITMHead(D)
    cls = torch.randn(8, D)
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    first, last = overfit(list(head.parameters()), lambda: itm_loss(head(cls), labels))
    assert last < 0.5 * first
    assert itm_accuracy(head(cls), labels).item() == 1.0
    assert itm_accuracy(torch.tensor([[1.0, 0], [0, 1]]), torch.tensor([1, 1])).item() == 0.5


# ---------------------------------------------------------------- MLM

SPECIAL = {0, 1, 2}    # pad, cls, sep
MASK_ID = 3


def text_batch(b: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] words [SEP] pad..., with random lengths; word ids in [5, V)."""
    g = gen(seed)
    ids = torch.randint(5, V, (b, length), generator=g)
    lens = torch.randint(3, length + 1, (b,), generator=g)
    pos = torch.arange(length)
    att = (pos[None] < lens[:, None]).long()
    ids[:, 0] = 1
    ids[torch.arange(b), lens - 1] = 2
    return ids.masked_fill(att == 0, 0), att


def test_mask_tokens_rates_and_rules() -> None:
    ids, att = text_batch(2000, 40)
    masked, labels = mask_tokens(ids, att, SPECIAL, MASK_ID, V, generator=gen(1))
    chosen = labels != -100
    maskable = att.bool() & ~torch.isin(ids, torch.tensor(sorted(SPECIAL)))
    assert not (chosen & ~maskable).any()                        # specials and padding never chosen
    assert (masked[~chosen] == ids[~chosen]).all()              # unchosen tokens untouched
    assert (labels[chosen] == ids[chosen]).all()
    assert chosen.any(1).all()
    assert chosen.sum() / maskable.sum() == pytest.approx(0.15, abs=0.01)
    n = chosen.sum().item()
    to_mask = (masked == MASK_ID) & chosen
    kept = (masked == ids) & chosen
    replaced = chosen & ~to_mask & ~kept
    assert to_mask.sum().item() / n == pytest.approx(0.8, abs=0.02)
    # a random replacement can draw the original id (1 / V): that one counts as kept
    assert (kept.sum().item() / n) == pytest.approx(0.1 + 0.1 / V, abs=0.015)
    assert replaced.sum().item() / n == pytest.approx(0.1 - 0.1 / V, abs=0.015)


def test_mask_tokens_at_least_one_per_sequence() -> None:
    ids, att = text_batch(300, 5, seed=2)                    # short: often nothing drawn at 15%
    masked, labels = mask_tokens(ids, att, torch.tensor(sorted(SPECIAL)), MASK_ID, V, generator=gen(2))
    assert ((labels != -100).sum(1) >= 1).all()
    only_special = torch.tensor([[1, 2, 0, 0]])
    masked, labels = mask_tokens(only_special, (only_special > 0).long(), SPECIAL, MASK_ID, V)
    assert (labels == -100).all() and torch.equal(masked, only_special)
    assert mlm_loss(torch.randn(1, 4, V, requires_grad=True), labels).item() == 0.0


def test_mlm_head_ties_weights_and_overfits() -> None:
    torch.manual_seed(0)
    emb = nn.Embedding(V, D)
    head = MLMHead(D, emb.weight)
    assert head.weight is emb.weight
    ids, att = text_batch(4, L, seed=3)
    _, labels = mask_tokens(ids, att, SPECIAL, MASK_ID, V, prob=0.3, generator=gen(3))
    hidden = torch.randn(4, L, D)
    assert head(hidden).shape == (4, L, V)
    params = list({id(p): p for p in [*head.parameters(), *emb.parameters()]}.values())
    first, last = overfit(params, lambda: mlm_loss(head(hidden), labels))
    assert last < 0.5 * first


# ---------------------------------------------------------------- STL

def test_focal_loss_hand_worked_and_bce_special_case() -> None:
    # logit 0 -> p = 0.5; y = 1: BCE = log 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25
    one = focal_loss(torch.tensor([0.0]), torch.tensor([1.0]))
    assert one.item() == pytest.approx(0.25 * 0.25 * math.log(2))
    # logit 2, y = 0: p_t = 1 - sigmoid(2), BCE = softplus(2), alpha_t = 0.75
    p = torch.sigmoid(torch.tensor(2.0)).item()
    assert focal_loss(torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(
        0.75 * p ** 2 * math.log1p(math.exp(2.0)), rel=1e-5)
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 7), (torch.rand(5, 7) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    assert focal_loss(logits, targets, gamma=0.0, alpha=None).item() == pytest.approx(bce.item(), rel=1e-6)
    assert focal_loss(logits, targets, gamma=0.0, alpha=0.5).item() == pytest.approx(0.5 * bce.item(), rel=1e-6)


def test_stl_targets_hand_worked() -> None:
    spikes = torch.zeros(3, 1, 2, 4)
    spikes[0, 0, 0, 1] = 1
    spikes[2, 0, 0, 1] = 1
    spikes[1, 0, 1, 3] = 1
    t = stl_targets(spikes)
    assert t.dtype == torch.float32 and t.shape == (1, 2, 4)
    assert t.tolist() == [[[0, 1, 0, 0], [0, 0, 0, 1]]]


def node_mask_batch() -> torch.Tensor:
    counts = torch.tensor([1, 2, 6, 3] * 50)                 # real nodes per sample
    return torch.arange(K)[None] < counts[:, None]


@pytest.mark.parametrize("select, prob", [(select_stl_nodes, 0.05), (select_mvm_nodes, 0.15)])
def test_node_selection(select: Callable, prob: float) -> None:
    node_mask = node_mask_batch()
    chosen = select(node_mask, generator=gen(4))
    assert chosen.dtype == torch.bool and chosen.shape == node_mask.shape
    assert not (chosen & ~node_mask).any()
    assert chosen.any(1).all()
    assert chosen[0].sum() == 1                               # a single real node: always it
    big = torch.ones(400, 50, dtype=torch.bool)
    big[:, 40:] = False
    rate = select(big, generator=gen(5)).float().sum() / big.sum()
    assert rate.item() == pytest.approx(prob, abs=0.015)
    assert not select(torch.zeros(2, K, dtype=torch.bool)).any()   # no real node: nothing


def test_stl_head_uses_text_only_and_overfits() -> None:
    torch.manual_seed(0)
    head = STLHead(D, num_slots=K, num_neurons=M)
    text = torch.randn(4, L, D)
    text_mask = torch.ones(4, L, dtype=torch.bool)
    text_mask[:, 6:] = False
    masked = torch.zeros(4, K, dtype=torch.bool)
    masked[[0, 1, 2, 3, 3], [0, 2, 1, 0, 4]] = True
    spikes = (torch.rand(5, 4, K, M) < 0.15).float()
    targets = stl_targets(spikes)
    assert head(text, text_mask, masked).shape == (5, M)
    padded = text.clone()
    padded[:, 6:] = 99.0                                       # padding must not matter
    assert torch.allclose(head(text, text_mask, masked), head(padded, text_mask, masked), atol=1e-5)
    first, last = overfit(list(head.parameters()), lambda: stl_loss(head, text, text_mask, masked, targets))
    assert last < 0.5 * first


# ---------------------------------------------------------------- STUA

def test_stua_uninformative_log_b_and_overfits() -> None:
    torch.manual_seed(0)
    head = STUAHead(D)
    x = torch.randn(1, D).expand(4, D)
    assert head(x, x).item() == pytest.approx(math.log(4), abs=1e-5)
    vis, txt = torch.randn(4, D), torch.randn(4, D)
    first, last = overfit(list(head.parameters()), lambda: head(vis, txt))
    assert last < 0.5 * first


# ---------------------------------------------------------------- MVM

def test_mvm_targets_hand_worked() -> None:
    spikes = torch.zeros(4, 1, 3, 5)
    spikes[:3, 0, 0, 2] = 1          # node 0: neuron 2 fires 3 times, neuron 4 once
    spikes[0, 0, 0, 4] = 1
    spikes[:2, 0, 1, 3] = 1          # node 1: tie between neurons 1 and 3 -> 1
    spikes[2:, 0, 1, 1] = 1
    t = mvm_targets(spikes)          # node 2 never fired -> ignored
    assert t.dtype == torch.long and t.tolist() == [[2, 1, -100]]


def test_mvm_ignores_silent_nodes_and_overfits() -> None:
    torch.manual_seed(0)
    head = MVMHead(D, M)
    feats = torch.randn(4, K, D)
    masked = torch.zeros(4, K, dtype=torch.bool)
    masked[[0, 1, 2, 3, 3], [1, 0, 3, 2, 5]] = True
    targets = torch.randint(M, (4, K))
    silent = targets.clone()
    silent[0, 1] = -100
    assert mvm_loss(head, feats, masked, silent).item() == pytest.approx(
        F.cross_entropy(head(feats, masked)[1:], targets[masked][1:]).item(), rel=1e-5)
    assert mvm_loss(head, feats, masked, torch.full((4, K), -100)).item() == 0.0
    first, last = overfit(list(head.parameters()), lambda: mvm_loss(head, feats, masked, targets))
    assert last < 0.5 * first


def test_itm_loss_weights_the_classes_equally() -> None:
    """Two negatives per positive: unweighted, a head that always says "no match" with p = 2/3 sits at
    the loss minimum of any constant answer (the prior trap); weighted equally, p = 1/2 is better."""
    from models.objectives import itm_loss
    labels = torch.tensor([1, 0, 0, 1, 0, 0])
    prior = torch.log(torch.tensor([[2 / 3, 1 / 3]])).expand(6, 2)
    even = torch.zeros(6, 2)
    assert itm_loss(even, labels).item() == pytest.approx(math.log(2), rel=1e-6)
    assert itm_loss(prior, labels).item() > itm_loss(even, labels).item()
    by_hand = (4 * 0.75 * -math.log(2 / 3) + 2 * 1.5 * -math.log(1 / 3)) / (4 * 0.75 + 2 * 1.5)
    assert itm_loss(prior, labels).item() == pytest.approx(by_hand, rel=1e-6)
