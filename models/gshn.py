"""The GSHN / ASH-Nets vision-language model for pretraining: visual encoder + transformer + objectives.

One class for both papers; presets (models/presets.py) only change its config. A step runs:
  1. the visual encoder -> V' (and the selector spikes when a branch spikes);
  2. unimodal passes: [IMG] of the image-only pass, [CLS] of the text-only pass -> ITC;
  3. ITM on the positive pairs and on hard negatives drawn by ITC similarity (ALBEF);
  4. one masked joint pass: MLM on masked text; STL (GSHN: masked nodes' spike vectors predicted
     from the text features) and MVM (ASH-Nets: masked nodes' dominant memory slot) on nodes
     whose features are zeroed BEFORE the visual encoder (UNITER), so neither the GAT's neighbours
     nor r carry the masked node's features; the targets come from the unmasked pass of step 1;
  5. STUA (ASH-Nets): InfoNCE between the SNN-derived visual embedding and the text [CLS];
  6. with an ITC queue (ASH-Nets' MoCo-style queues), the momentum encoders move towards the trained ones and
     this batch's embeddings from them enter the queue, after the ITC loss has used it (ALBEF's order).
Losses are summed with weight 1 and returned with ITM accuracy and SNN firing rates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from models import objectives as obj
from models.hybrid import SpikingBranch, VisualConfig, VisualEncoder, VisualOutput
from models.momentum import MomentumEncoders
from models.nodes import NodeBatch
from models.pooling import masked_mean
from models.text import SingleStreamTransformer, TransformerConfig

OBJECTIVES = ("itc", "itm", "mlm", "stl", "stua", "mvm")
SPIKE_OBJECTIVES = ("stl", "stua", "mvm")


@dataclass(frozen=True)
class TextSpec:
    """What the model needs to know about the tokenizer (the stage builds the tokenizer)."""

    vocab_size: int
    mask_id: int
    special_ids: tuple[int, ...]
    max_len: int


@dataclass
class PretrainBatch:
    nodes: NodeBatch
    text_ids: Tensor     # (B, L)
    text_mask: Tensor    # (B, L)
    caption_ids: Tensor | None = None   # (B,) long: equal ids = the same caption text (never each other's negative)
    image_ids: Tensor | None = None     # (B,) long: equal ids = the same image (the ITC queue's entries of it are none)

    def to(self, device: torch.device | str) -> PretrainBatch:
        caption_ids, image_ids = (None if t is None else t.to(device) for t in (self.caption_ids, self.image_ids))
        return PretrainBatch(self.nodes.to(device), self.text_ids.to(device), self.text_mask.to(device), caption_ids,
                             image_ids)


def image_embedding(transformer: SingleStreamTransformer, tokens: Tensor, node_mask: Tensor) -> Tensor:
    """Masked mean of the image-only pass ([IMG] + nodes)."""
    img_mask = torch.cat([torch.ones_like(node_mask[:, :1]), node_mask], 1)
    return masked_mean(transformer.encode_image(tokens, node_mask), img_mask)


def text_embedding(transformer: SingleStreamTransformer, text_ids: Tensor, text_mask: Tensor) -> Tensor:
    """Masked mean of the text-only pass."""
    return masked_mean(transformer.encode_text(text_ids, text_mask), text_mask)


def same_caption(caption_ids: Tensor | None, B: int, device: torch.device) -> Tensor:
    """(B, B) bool: pairs whose captions are the same text, the diagonal included."""
    if caption_ids is None:
        return torch.eye(B, dtype=torch.bool, device=device)
    return caption_ids[:, None] == caption_ids[None, :]


def spiking_share(vis: VisualOutput) -> Tensor:
    """|r * E| / |F|: the spiking branch's share of the visual tokens (mean over real nodes)."""
    if vis.ratio is None or vis.discrete is None or vis.continuous is None:
        return torch.zeros(())
    rE = (vis.ratio * vis.discrete).norm(dim=-1)
    F = vis.continuous.norm(dim=-1)
    real = F > 0
    return rE[real].mean() / F[real].mean().clamp_min(1e-12)


class GSHN(nn.Module):
    def __init__(self, visual: VisualConfig, transformer: TransformerConfig, text: TextSpec,
                 objectives: tuple[str, ...], loss_weights: dict[str, float] | None = None, itc_queue: int = 0) -> None:
        super().__init__()
        self.weights = dict(loss_weights or {})   # objective -> weight in the summed loss (default 1)
        if visual.d != transformer.d:
            raise ValueError(f"visual width d={visual.d} must equal the transformer width d={transformer.d}")
        self.text = text
        self.visual = VisualEncoder(visual)
        self.transformer = SingleStreamTransformer(transformer)
        d = transformer.d
        self.itc = obj.ContrastiveHead(d, queue=itc_queue)
        self.itm = obj.ITMHead(d + self.itc.dim)
        self.mlm = obj.MLMHead(d, self.transformer.word_embeddings.weight)
        spiking = bool(self.visual.spiking_branches())
        self.stl = obj.STLHead(d, visual.K, visual.M) if spiking else None
        self.mvm = obj.MVMHead(d, visual.M) if spiking else None
        self.stua = obj.STUAHead(d) if spiking else None
        self.objectives: tuple[str, ...] = ()
        self.set_objectives(objectives)
        # last: a copy of the modules as initialised (no random draw, so the online weights are as without a queue)
        self.momentum = MomentumEncoders(self._encoders()) if itc_queue else None

    def _encoders(self) -> dict[str, nn.Module]:
        """The modules an ITC embedding passes through: what the momentum encoders follow."""
        return {"visual": self.visual, "transformer": self.transformer, "img_proj": self.itc.img_proj,
                "txt_proj": self.itc.txt_proj}

    def sync_momentum(self) -> None:
        """Momentum encoders = the online ones, after weights were loaded into the online ones alone (MiniLM)."""
        if self.momentum is not None:
            self.momentum.sync(self._encoders())

    def freeze_snn(self, frozen: bool) -> None:
        """Phase 1: the SNN's weights get no gradient. Its tdBN still normalises with batch
        statistics, so the fixed SNN emits real spike patterns (MVM targets, memory selection);
        kept in eval mode with its initial statistics it would be nearly silent."""
        for p in self.visual.snn_parameters():
            p.requires_grad_(not frozen)

    def set_objectives(self, names: tuple[str, ...]) -> None:
        unknown = set(names) - set(OBJECTIVES)
        if unknown:
            raise ValueError(f"unknown objectives {sorted(unknown)}; known: {OBJECTIVES}")
        if set(names) & set(SPIKE_OBJECTIVES) and self.stl is None:
            raise ValueError(f"objectives {sorted(set(names) & set(SPIKE_OBJECTIVES))} need a spiking branch")
        self.objectives = tuple(names)

    # ---- pieces shared with retrieval / downstream use ----
    def unimodal(self, tokens: Tensor, node_mask: Tensor, text_ids: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Unimodal embeddings: masked means of the image-only ([IMG] + nodes) and text-only passes.

        Mean pooling rather than the [CLS]/[IMG] output: trained from scratch, a [CLS] token starts
        almost identical for every input (cosine ~0.9998 at init) and contrastive learning stalls
        at log B; ALBEF can use [CLS] because it starts from pretrained encoders.
        """
        return self.pooled_image(tokens, node_mask), self.pooled_text(text_ids, text_mask)

    def pooled_image(self, tokens: Tensor, node_mask: Tensor) -> Tensor:
        return image_embedding(self.transformer, tokens, node_mask)

    def pooled_text(self, text_ids: Tensor, text_mask: Tensor) -> Tensor:
        return text_embedding(self.transformer, text_ids, text_mask)

    def itm_logits(self, text_ids: Tensor, text_mask: Tensor, tokens: Tensor, node_mask: Tensor,
                   embeddings: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Match / no-match logits from the masked mean of the joint pass (text and visual positions) beside
        the product of the pair's ITC embeddings. A from-scratch [CLS] starts nearly the same for every
        input and the joint pass learns cross-modal attention slowly; the product carries what ITC has
        aligned from the first steps, as the downstream product head does. `embeddings`: the pair's ITC
        image and text embeddings when already computed (retrieval and `reorder` score many pairs per image)."""
        seq = self.transformer(text_ids, text_mask, tokens, node_mask)
        joint = masked_mean(seq, torch.cat([text_mask.bool(), node_mask.bool()], 1))
        img, txt = embeddings or self.itc.embed(*self.unimodal(tokens, node_mask, text_ids, text_mask))
        # x dim: unit-norm embeddings have entries ~ 1/sqrt(dim), so each product entry becomes O(1)
        return self.itm(torch.cat([joint, img * txt * self.itc.dim], -1))

    # ---- pretraining step ----
    def forward(self, batch: PretrainBatch) -> dict[str, Tensor]:
        nodes, ids, tmask = batch.nodes, batch.text_ids, batch.text_mask
        vis = self.visual(nodes)
        V, nmask = vis.tokens, nodes.node_mask
        out: dict[str, Tensor] = {}
        same = same_caption(batch.caption_ids, ids.shape[0], ids.device)
        img_cls, txt_cls = self.unimodal(V, nmask, ids, tmask)
        emb = self.itc.embed(img_cls, txt_cls)
        itc_loss, sim = self.itc.loss(*emb, same=same, keys=(batch.image_ids, batch.caption_ids))
        if "itc" in self.objectives:
            out["itc"] = itc_loss
        if "itm" in self.objectives:
            out["itm"], out["itm_acc"] = self._itm(ids, tmask, V, nmask, sim, same, emb)
        if {"mlm", "stl", "mvm"} & set(self.objectives):
            out |= self._masked_pass(nodes, V, ids, tmask, vis.spikes)
        if "stua" in self.objectives:
            spiking = vis.discrete if isinstance(self.visual.discrete, SpikingBranch) else vis.continuous
            out["stua"] = self.stua(masked_mean(spiking, nmask), txt_cls)
        out["loss"] = sum(self.weights.get(k, 1.0) * out[k] for k in self.objectives)
        for branch in self.visual.spiking_branches():
            rates = branch.snn.firing_rates()
            out["firing_rate"] = torch.tensor(sum(rates.values()) / max(len(rates), 1))
        if vis.ratio is not None:
            out["spiking_share"] = spiking_share(vis).detach()
        if self.momentum is not None and self.training:    # last: the online pass draws as without a queue
            self._enqueue(batch)
        return out

    @torch.no_grad()
    def _enqueue(self, batch: PretrainBatch) -> None:
        """The momentum encoders move towards the online ones, then embed the batch into the ITC queue."""
        self.momentum.update(self._encoders())
        m, nmask = self.momentum, batch.nodes.node_mask
        img = m["img_proj"](image_embedding(m["transformer"], m["visual"](batch.nodes).tokens, nmask))
        txt = m["txt_proj"](text_embedding(m["transformer"], batch.text_ids, batch.text_mask))
        self.itc.queue.enqueue(nnf.normalize(img, dim=-1), nnf.normalize(txt, dim=-1), batch.image_ids,
                               batch.caption_ids)

    def _itm(self, ids: Tensor, tmask: Tensor, V: Tensor, nmask: Tensor, sim: Tensor,
             same: Tensor, emb: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Rows: B positives, B images with a hard-negative text, B texts with a hard-negative image; every
        row's ITC embeddings are `emb`'s (this step's), so ITM adds only the joint pass."""
        B = ids.shape[0]
        neg_txt, neg_img = obj.sample_hard_negatives(sim, exclude=same)
        same_row = torch.arange(B, device=ids.device)
        txt_row, img_row = torch.cat([same_row, neg_txt, same_row]), torch.cat([same_row, same_row, neg_img])
        labels = torch.cat([torch.ones(B), torch.zeros(2 * B)]).long().to(ids.device)
        logits = self.itm_logits(ids[txt_row], tmask[txt_row], V[img_row], nmask[img_row],
                                 embeddings=(emb[0][img_row], emb[1][txt_row]))
        return obj.itm_loss(logits, labels), obj.itm_accuracy(logits, labels).detach()

    def _masked_pass(self, nodes: NodeBatch, V: Tensor, ids: Tensor, tmask: Tensor,
                     spikes: Tensor | None) -> dict[str, Tensor]:
        """MLM, STL and MVM on one joint pass over masked text and a visual pass with the chosen nodes'
        features zeroed before the encoder; STL/MVM targets are the unmasked pass's `spikes`."""
        out: dict[str, Tensor] = {}
        nmask = nodes.node_mask
        masked_ids, labels = ids, None
        if "mlm" in self.objectives:
            masked_ids, labels = obj.mask_tokens(ids, tmask, set(self.text.special_ids), self.text.mask_id,
                                                 self.text.vocab_size)
        hidden_nodes = torch.zeros_like(nmask)
        if "stl" in self.objectives:
            stl_nodes = obj.select_stl_nodes(nmask)
            hidden_nodes |= stl_nodes
        if "mvm" in self.objectives:
            mvm_nodes = obj.select_mvm_nodes(nmask)
            hidden_nodes |= mvm_nodes
        V_in = self.visual(nodes, hidden=hidden_nodes).tokens if hidden_nodes.any() else V
        seq = self.transformer(masked_ids, tmask, V_in, nmask)
        L = ids.shape[1]
        if labels is not None:  # vocabulary logits only where a token was masked
            picked = labels != obj.IGNORE
            out["mlm"] = obj.mlm_loss(self.mlm(seq[:, :L][picked]), labels[picked])
        if "stl" in self.objectives:
            out["stl"] = obj.stl_loss(self.stl, seq[:, :L], tmask, stl_nodes, obj.stl_targets(spikes))
        if "mvm" in self.objectives:
            out["mvm"] = obj.mvm_loss(self.mvm, seq[:, L:], mvm_nodes, obj.mvm_targets(spikes))
        return out

    def branch_gradient_norms(self, batch: PretrainBatch) -> dict[str, float]:
        """Gradient norms of the SNN and the continuous branch for one step on `batch` (the SNN's too
        when frozen), without changing any weight: whether the spiking branch learns at its sibling's pace."""
        snn = self.visual.snn_parameters()
        continuous = [] if self.visual.continuous is None else list(self.visual.continuous.parameters())
        frozen = [p.requires_grad for p in snn]
        # batch-norm statistics, the ITC queue and the momentum encoders stay as they were
        kept = dict(self.named_buffers())
        if self.momentum is not None:
            kept |= dict(self.momentum.named_parameters(prefix="momentum"))
        saved = {k: v.detach().clone() for k, v in kept.items()}
        for p in snn:
            p.requires_grad_(True)
        self.zero_grad(set_to_none=True)
        self(batch)["loss"].backward()
        with torch.no_grad():
            for k, v in kept.items():
                v.copy_(saved[k])

        def norm(params: list[nn.Parameter]) -> float:
            grads = [p.grad.norm() for p in params if p.grad is not None]
            return float(torch.stack(grads).norm()) if grads else 0.0

        out = {"grad_norm_snn": norm(snn), "grad_norm_continuous": norm(continuous)}
        self.zero_grad(set_to_none=True)
        for p, f in zip(snn, frozen):
            p.requires_grad_(f)
        return out

    # ---- parameter groups for the trainer ----
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """`snn`: the SNN encoders (SGD; frozen in phase 1). `main`: everything else (AdamW) but the momentum
        encoders, which follow the others and take no gradient."""
        snn = {id(p) for p in self.visual.snn_parameters()}
        followers = set() if self.momentum is None else {id(p) for p in self.momentum.parameters()}
        return {"snn": [p for p in self.parameters() if id(p) in snn],
                "main": [p for p in self.parameters() if id(p) not in snn | followers]}
