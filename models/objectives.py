"""Pretraining objectives: ITC/CL, ITM, MLM, STL (GSHN), STUA and MVM (ASH-Nets).

Each loss returns a scalar tensor; heads are small nn.Modules. Shapes: B pairs, d model width,
K visual node slots (`node_mask` B x K, True = real node), M selector neurons / memory rows,
spikes T x B x K x M (binary). Random choices take an optional torch.Generator (on the tensors' device).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE = -100       # label of positions that carry no loss (MLM, MVM)


# ---------------------------------------------------------------- shared pieces

class Temperature(nn.Module):
    """Learnable softmax temperature, stored as its log and clamped in place on every call
    (as ALBEF does), so it can move back from a bound instead of sticking there."""

    def __init__(self, init: float = 0.07, low: float = 0.001, high: float = 0.5) -> None:
        super().__init__()
        self.log_temp = nn.Parameter(torch.tensor(math.log(init)))
        self.bounds = (math.log(low), math.log(high))

    def forward(self) -> Tensor:
        with torch.no_grad():
            self.log_temp.clamp_(*self.bounds)
        return self.log_temp.exp()


@dataclass
class QueuedNegatives:
    """Past steps' embeddings as extra ITC negatives (MoCo / ALBEF): images for the text->image softmax, texts
    for the image->text one, and which (row, slot) pairs are no negatives (empty slot, same image or caption)."""

    img: Tensor          # (Q, D)
    txt: Tensor          # (Q, D)
    excluded: Tensor     # (B, Q) bool; (1, Q) when it is the same for every row


def queue_logits(i2t: Tensor, img: Tensor, txt: Tensor, temp: Tensor,
                 queued: QueuedNegatives) -> tuple[Tensor, Tensor]:
    """In-batch image->text logits (B, B), masked, widened by the queue: (image->text, text->image) logits
    (B, B + Q each); an excluded slot's logit is -inf, so it is left out of the softmax."""
    def widen(batch: Tensor, rows: Tensor, others: Tensor) -> Tensor:
        extra = (rows @ others.T.to(rows.dtype) / temp).masked_fill(queued.excluded, float("-inf"))
        return torch.cat([batch, extra.to(batch.dtype)], 1)

    return widen(i2t, img, queued.txt), widen(i2t.T, txt, queued.img)


def info_nce(img: Tensor, txt: Tensor, temp: Tensor, same: Tensor | None = None,
             queued: QueuedNegatives | None = None) -> tuple[Tensor, Tensor]:
    """Symmetric InfoNCE over normalised embeddings (B, D); pair i is the positive of row i.
    `same` (B, B) bool marks pairs with the same caption: off the diagonal they are left out of
    the softmax (a false negative is not pushed away). `queued`: more negatives of each direction
    (`queue_logits`). Returns (loss, in-batch image->text logits (B, B) = sim / temp, unmasked and detached)."""
    raw = img @ txt.T / temp
    i2t = raw
    if same is not None:
        i2t = raw.masked_fill(same & ~torch.eye(len(img), dtype=torch.bool, device=img.device), float("-inf"))
    target = torch.arange(len(img), device=img.device)
    i2t, t2i = (i2t, i2t.T) if queued is None else queue_logits(i2t, img, txt, temp, queued)
    loss = (F.cross_entropy(i2t.float(), target) + F.cross_entropy(t2i.float(), target)) / 2
    return loss, raw.detach()


def masked_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over logits (..., C) and labels (...), skipping IGNORE labels; 0 (with a
    graph) when every label is ignored, where plain cross_entropy would give NaN."""
    logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    if not (labels != IGNORE).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)


def ensure_one(chosen: Tensor, allowed: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """chosen, allowed (B, N) bool: rows with an allowed position but nothing chosen get one
    allowed position chosen uniformly at random."""
    need = allowed.any(1) & ~chosen.any(1)
    scores = torch.rand(allowed.shape, generator=generator, device=allowed.device)
    pick = scores.masked_fill(~allowed, -1.0).argmax(1)
    rows = need.nonzero(as_tuple=True)[0]
    chosen = chosen.clone()
    chosen[rows, pick[rows]] = True
    return chosen


def select_nodes(node_mask: Tensor, prob: float, generator: torch.Generator | None = None) -> Tensor:
    """(B, K) bool: each real node chosen with probability `prob`, at least one per sample."""
    node_mask = node_mask.bool()
    draw = torch.rand(node_mask.shape, generator=generator, device=node_mask.device) < prob
    return ensure_one(draw & node_mask, node_mask, generator)


# ---------------------------------------------------------------- ITC / CL


class EmbeddingQueue(nn.Module):
    """The last `size` image and text ITC embeddings of past steps with the keys of their image and caption,
    first in first out (MoCo / ALBEF). Buffers, so the state dict (checkpoints, resume) carries them; slots
    fill from 0, so the first `count` are the filled ones."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("img", torch.zeros(size, dim))
        self.register_buffer("txt", torch.zeros(size, dim))
        self.register_buffer("image_key", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("caption_key", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))     # the next slot written
        self.register_buffer("count", torch.zeros((), dtype=torch.long))   # filled slots

    @torch.no_grad()
    def enqueue(self, img: Tensor, txt: Tensor, image_key: Tensor | None, caption_key: Tensor | None) -> None:
        """Write a batch over the oldest slots; keys (B,) long, or None when unknown (-1: equal to no key)."""
        n = min(len(img), self.size)           # a batch longer than the queue keeps its last `size` rows
        slots = (int(self.ptr) + torch.arange(n, device=self.img.device)) % self.size
        none = torch.full((len(img),), -1, dtype=torch.long, device=self.img.device)
        for buf, new in ((self.img, img), (self.txt, txt), (self.image_key, none if image_key is None else image_key),
                         (self.caption_key, none if caption_key is None else caption_key)):
            buf[slots] = new[-n:].to(buf.dtype)
        self.ptr.fill_((int(self.ptr) + n) % self.size)
        self.count.fill_(min(int(self.count) + n, self.size))

    def negatives(self, image_key: Tensor | None, caption_key: Tensor | None) -> QueuedNegatives:
        """The queue as negatives for a batch with these keys: an empty slot, or one of a row's own image or
        caption text (an earlier epoch's pair of the same image; a caption shared by several images), is none."""
        excluded = (torch.arange(self.size, device=self.img.device) >= self.count)[None, :]
        for key, queued in ((image_key, self.image_key), (caption_key, self.caption_key)):
            if key is not None:
                excluded = excluded | (key[:, None] == queued[None, :])
        # copies: the step's enqueue overwrites the buffers before backward needs them (ALBEF clones too)
        return QueuedNegatives(self.img.clone(), self.txt.clone(), excluded)


class ContrastiveHead(nn.Module):
    """ITC / CL: image and text embeddings projected to `dim`, L2-normalised, symmetric InfoNCE
    with a learnable temperature (ALBEF); with `queue` > 0, an `EmbeddingQueue` of that many past
    embeddings adds negatives to both directions (ASH-Nets III.C.1, MoCo)."""

    def __init__(self, d: int, dim: int = 256, temp: float = 0.07, queue: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.img_proj = nn.Linear(d, dim)
        self.txt_proj = nn.Linear(d, dim)
        self.temperature = Temperature(temp)
        self.queue = EmbeddingQueue(queue, dim) if queue else None

    def embed_image(self, img_cls: Tensor) -> Tensor:
        return F.normalize(self.img_proj(img_cls), dim=-1)

    def embed_text(self, txt_cls: Tensor) -> Tensor:
        return F.normalize(self.txt_proj(txt_cls), dim=-1)

    def embed(self, img_cls: Tensor, txt_cls: Tensor) -> tuple[Tensor, Tensor]:
        """(B, d), (B, d) -> normalised (B, dim) image and text embeddings."""
        return self.embed_image(img_cls), self.embed_text(txt_cls)

    def forward(self, img_cls: Tensor, txt_cls: Tensor, same: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """-> (loss, sim_i2t (B, B) = cosine / temperature, detached: ITM negative weights)."""
        return self.loss(*self.embed(img_cls, txt_cls), same)

    def loss(self, img: Tensor, txt: Tensor, same: Tensor | None = None,
             keys: tuple[Tensor | None, Tensor | None] = (None, None)) -> tuple[Tensor, Tensor]:
        """forward's result from embeddings already computed (pretraining hands them on to ITM); `keys`: the
        batch's image and caption keys, which keep the queue's entries of the same image or caption out."""
        queued = None if self.queue is None else self.queue.negatives(*keys)
        return info_nce(img, txt, self.temperature(), same, queued)


# ---------------------------------------------------------------- ITM

def sample_hard_negatives(sim_i2t: Tensor, generator: torch.Generator | None = None,
                          exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """ALBEF hard negatives from the in-batch similarity (B, B), B >= 2: for each image a text
    drawn with probability softmax(sim) over the other texts (the positive never), and for
    each text an image likewise. `exclude` (B, B) bool marks further pairs that are not
    negatives (the same caption text); a row with no other candidate falls back to any other
    sample. -> (neg_text_for_image (B,), neg_image_for_text (B,)) long."""
    b = len(sim_i2t)
    if b < 2:
        raise ValueError("hard negatives need a batch of at least 2 pairs")
    diag = torch.eye(b, dtype=torch.bool, device=sim_i2t.device)
    banned = diag if exclude is None else diag | exclude
    banned = torch.where(banned.all(1, keepdim=True), diag, banned)

    def draw(sim: Tensor) -> Tensor:
        weights = sim.float().masked_fill(banned, float("-inf")).softmax(1)
        return torch.multinomial(weights, 1, generator=generator).squeeze(1)

    return draw(sim_i2t), draw(sim_i2t.T)


class ITMHead(nn.Module):
    """ITM: match / no-match logits (N, 2) from a multimodal feature (N, d_in); class 1 = match."""

    def __init__(self, d_in: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, 2)

    def forward(self, feature: Tensor) -> Tensor:
        return self.fc(feature)


def itm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy with the two classes weighted equally: a step has two negatives per positive, and
    from scratch the head otherwise settles on always answering "no match" (the 1:2 prior)."""
    counts = torch.bincount(labels, minlength=2).clamp_min(1).float()
    return F.cross_entropy(logits.float(), labels, weight=counts.sum() / (2 * counts))


def itm_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    return (logits.argmax(-1) == labels).float().mean()


# ---------------------------------------------------------------- MLM

def mask_tokens(input_ids: Tensor, attention_mask: Tensor, special_ids: set[int] | Tensor, mask_id: int,
                vocab_size: int, prob: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT masking: each non-special, non-padding token is chosen with probability `prob`
    (at least one per sequence that has any); a chosen token becomes [MASK] (80%), a random
    token (10%) or stays (10%). -> (masked_ids, labels: original id where chosen, else -100)."""
    dev = input_ids.device
    special = torch.as_tensor(sorted(special_ids) if isinstance(special_ids, set) else special_ids,
                              dtype=input_ids.dtype, device=dev)
    maskable = attention_mask.bool() & ~torch.isin(input_ids, special)
    draw = torch.rand(input_ids.shape, generator=generator, device=dev) < prob
    chosen = ensure_one(draw & maskable, maskable, generator)
    labels = input_ids.masked_fill(~chosen, IGNORE)
    r = torch.rand(input_ids.shape, generator=generator, device=dev)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=dev, dtype=input_ids.dtype)
    masked = input_ids.masked_fill(chosen & (r < 0.8), mask_id)
    masked = torch.where(chosen & (r >= 0.8) & (r < 0.9), random_ids, masked)
    return masked, labels


class MLMHead(nn.Module):
    """BERT LM head: Linear + GELU + LayerNorm, then a decoder tied to the word embeddings
    (`word_weight` (V, d), the embedding's own Parameter) plus a per-token bias."""

    def __init__(self, d: int, word_weight: nn.Parameter, eps: float = 1e-12) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=eps))
        self.weight = word_weight
        self.bias = nn.Parameter(torch.zeros(word_weight.shape[0]))

    def forward(self, hidden: Tensor) -> Tensor:
        """(..., d) -> (..., V) logits."""
        return F.linear(self.transform(hidden), self.weight, self.bias)


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over the labelled (masked) tokens; logits (..., V), labels (...)."""
    return masked_ce(logits, labels)


# ---------------------------------------------------------------- STL (GSHN eq. 14-15)

def select_stl_nodes(node_mask: Tensor, prob: float = 0.05, generator: torch.Generator | None = None) -> Tensor:
    """(B, K) bool: ~5% of real nodes masked, at least one per sample (eq. 14)."""
    return select_nodes(node_mask, prob, generator)


def stl_targets(spikes: Tensor) -> Tensor:
    """Spikes (T, B, K, M) -> (B, K, M) float: 1 where the neuron fired at least once in T."""
    return (spikes > 0).any(0).float()


class STLHead(nn.Module):
    """Predicts a masked node's M-dim spike vector from the TEXT features only: a learned
    embedding of the node's slot index attends over the text tokens (one cross-attention
    layer, residual + LayerNorm), then Linear(d, M) logits."""

    def __init__(self, d: int, num_slots: int, num_neurons: int, heads: int = 4) -> None:
        super().__init__()
        self.slots = nn.Embedding(num_slots, d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, num_neurons)

    def forward(self, text_feats: Tensor, text_mask: Tensor, masked: Tensor) -> Tensor:
        """text_feats (B, L, d), text_mask (B, L) True = token, masked (B, K) bool -> logits
        (N, M) for the N masked nodes, in `masked.nonzero()` order."""
        q = self.slots.weight[: masked.shape[1]].unsqueeze(0).expand(len(text_feats), -1, -1)
        ctx, _ = self.attn(q, text_feats, text_feats, key_padding_mask=~text_mask.bool(), need_weights=False)
        return self.out(self.norm(q + ctx)[masked])


def focal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: float | None = 0.25) -> Tensor:
    """Binary focal loss (Lin et al.), mean over elements: alpha_t (1 - p_t)^gamma BCE.
    alpha=None skips the class weighting; gamma=0, alpha=None is plain BCE."""
    logits, targets = logits.float(), targets.float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = logits.sigmoid()
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.mean()


def stl_loss(head: STLHead, text_feats: Tensor, text_mask: Tensor, masked: Tensor, targets: Tensor,
             gamma: float = 2.0, alpha: float | None = 0.25) -> Tensor:
    """Focal loss (eq. 15) of the head's predictions for the masked nodes against their spike
    labels; targets (B, K, M) from `stl_targets` on the unmasked spikes."""
    return focal_loss(head(text_feats, text_mask, masked), targets[masked], gamma, alpha)


# ---------------------------------------------------------------- STUA (ASH eq. 9-11)

class STUAHead(nn.Module):
    """Spiking-to-text alignment: h_v on the SNN-derived visual embedding (mean of E_syn over
    real nodes, (B, d), from the caller) and h_w on the text [CLS], both to 256-d and
    normalised (eq. 9); InfoNCE with a learnable temperature (eq. 10). The paper's eq. 11 has
    only the spike-to-text direction with a 1/2 factor; this is the symmetric version, the
    mean of spike->text and text->spike cross-entropies."""

    def __init__(self, d: int, dim: int = 256, temp: float = 0.07) -> None:
        super().__init__()
        self.h_v = nn.Linear(d, dim)
        self.h_w = nn.Linear(d, dim)
        self.temperature = Temperature(temp)

    def forward(self, vis_emb: Tensor, txt_cls: Tensor) -> Tensor:
        v, w = F.normalize(self.h_v(vis_emb), dim=-1), F.normalize(self.h_w(txt_cls), dim=-1)
        return info_nce(v, w, self.temperature())[0]


# ---------------------------------------------------------------- MVM (ASH)

def select_mvm_nodes(node_mask: Tensor, prob: float = 0.15, generator: torch.Generator | None = None) -> Tensor:
    """(B, K) bool: ~15% of real visual tokens masked, at least one per sample."""
    return select_nodes(node_mask, prob, generator)


def mvm_targets(spikes: Tensor) -> Tensor:
    """Spikes (T, B, K, M) -> (B, K) long: the dominant memory slot (highest firing rate; ties
    -> lowest index). A node whose neurons never fired has no dominant slot: -100 (ignored)."""
    rate = spikes.float().mean(0)
    return rate.argmax(-1).masked_fill(rate.amax(-1) <= 0, IGNORE)


class MVMHead(nn.Module):
    """Linear(d, M) over the transformer outputs at the masked visual positions."""

    def __init__(self, d: int, num_neurons: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, num_neurons)

    def forward(self, vis_feats: Tensor, masked: Tensor) -> Tensor:
        """vis_feats (B, K, d), masked (B, K) bool -> logits (N, M) for the masked nodes."""
        return self.fc(vis_feats[masked])


def mvm_loss(head: MVMHead, vis_feats: Tensor, masked: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy on the masked nodes only; masked nodes that never fired (target -100)
    carry no loss (0 when none fired)."""
    return masked_ce(head(vis_feats, masked), targets[masked])
