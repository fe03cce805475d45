"""The GSHN / ASH-Nets vision-language model for pretraining: visual encoder + transformer + objectives.

One class for both papers; presets (models/presets.py) only change its config. A step runs:
  1. the visual encoder -> V' (and the selector spikes when a branch spikes);
  2. unimodal passes: [IMG] of the image-only pass, [CLS] of the text-only pass -> ITC;
  3. ITM on the positive pairs and on hard negatives drawn by ITC similarity (ALBEF);
  4. one masked joint pass: MLM on masked text; STL (GSHN: masked nodes' spike vectors predicted
     from the text features) and MVM (ASH-Nets: masked nodes' dominant memory slot) on nodes
     whose visual tokens are replaced by a learned [MASK] token;
  5. STUA (ASH-Nets): InfoNCE between the SNN-derived visual embedding and the text [CLS].
Losses are summed with weight 1 and returned with ITM accuracy and SNN firing rates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models import objectives as obj
from models.hybrid import SpikingBranch, VisualConfig, VisualEncoder
from models.nodes import NodeBatch
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

    def to(self, device: torch.device | str) -> PretrainBatch:
        return PretrainBatch(self.nodes.to(device), self.text_ids.to(device), self.text_mask.to(device))


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def image_embedding(transformer: SingleStreamTransformer, tokens: Tensor, node_mask: Tensor) -> Tensor:
    """Masked mean of the image-only pass ([IMG] + nodes)."""
    img_mask = torch.cat([torch.ones_like(node_mask[:, :1]), node_mask], 1)
    return _masked_mean(transformer.encode_image(tokens, node_mask), img_mask)


def text_embedding(transformer: SingleStreamTransformer, text_ids: Tensor, text_mask: Tensor) -> Tensor:
    """Masked mean of the text-only pass."""
    return _masked_mean(transformer.encode_text(text_ids, text_mask), text_mask)


class GSHN(nn.Module):
    def __init__(self, visual: VisualConfig, transformer: TransformerConfig, text: TextSpec,
                 objectives: tuple[str, ...]) -> None:
        super().__init__()
        if visual.d != transformer.d:
            raise ValueError(f"visual width d={visual.d} must equal the transformer width d={transformer.d}")
        self.text = text
        self.visual = VisualEncoder(visual)
        self.transformer = SingleStreamTransformer(transformer)
        d = transformer.d
        self.itc = obj.ContrastiveHead(d)
        self.itm = obj.ITMHead(d)
        self.mlm = obj.MLMHead(d, self.transformer.word_embeddings.weight)
        self.visual_mask = nn.Parameter(torch.zeros(d))
        spiking = bool(self.visual.spiking_branches())
        self.stl = obj.STLHead(d, visual.K, visual.M) if spiking else None
        self.mvm = obj.MVMHead(d, visual.M) if spiking else None
        self.stua = obj.STUAHead(d) if spiking else None
        self.objectives: tuple[str, ...] = ()
        self.set_objectives(objectives)

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
        return self.image_cls(tokens, node_mask), self.text_cls(text_ids, text_mask)

    def image_cls(self, tokens: Tensor, node_mask: Tensor) -> Tensor:
        return image_embedding(self.transformer, tokens, node_mask)

    def text_cls(self, text_ids: Tensor, text_mask: Tensor) -> Tensor:
        return text_embedding(self.transformer, text_ids, text_mask)

    def itm_logits(self, text_ids: Tensor, text_mask: Tensor, tokens: Tensor, node_mask: Tensor) -> Tensor:
        return self.itm(self.transformer(text_ids, text_mask, tokens, node_mask)[:, 0])

    # ---- pretraining step ----
    def forward(self, batch: PretrainBatch) -> dict[str, Tensor]:
        nodes, ids, tmask = batch.nodes, batch.text_ids, batch.text_mask
        vis = self.visual(nodes)
        V, nmask = vis.tokens, nodes.node_mask
        out: dict[str, Tensor] = {}
        img_cls, txt_cls = self.unimodal(V, nmask, ids, tmask)
        itc_loss, sim = self.itc(img_cls, txt_cls)
        if "itc" in self.objectives:
            out["itc"] = itc_loss
        if "itm" in self.objectives:
            out["itm"], out["itm_acc"] = self._itm(ids, tmask, V, nmask, sim)
        if {"mlm", "stl", "mvm"} & set(self.objectives):
            out |= self._masked_pass(ids, tmask, V, nmask, vis.spikes)
        if "stua" in self.objectives:
            spiking = vis.discrete if isinstance(self.visual.discrete, SpikingBranch) else vis.continuous
            m = nmask[..., None].to(spiking.dtype)
            out["stua"] = self.stua((spiking * m).sum(1) / m.sum(1).clamp_min(1.0), txt_cls)
        out["loss"] = sum(out[k] for k in self.objectives)
        for branch in self.visual.spiking_branches():
            rates = branch.snn.firing_rates()
            out["firing_rate"] = torch.tensor(sum(rates.values()) / max(len(rates), 1))
        return out

    def _itm(self, ids: Tensor, tmask: Tensor, V: Tensor, nmask: Tensor, sim: Tensor) -> tuple[Tensor, Tensor]:
        neg_txt, neg_img = obj.sample_hard_negatives(sim)
        all_ids = torch.cat([ids, ids[neg_txt], ids])
        all_tmask = torch.cat([tmask, tmask[neg_txt], tmask])
        all_V = torch.cat([V, V, V[neg_img]])
        all_nmask = torch.cat([nmask, nmask, nmask[neg_img]])
        B = ids.shape[0]
        labels = torch.cat([torch.ones(B), torch.zeros(2 * B)]).long().to(ids.device)
        logits = self.itm_logits(all_ids, all_tmask, all_V, all_nmask)
        return obj.itm_loss(logits, labels), obj.itm_accuracy(logits, labels).detach()

    def _masked_pass(self, ids: Tensor, tmask: Tensor, V: Tensor, nmask: Tensor,
                     spikes: Tensor | None) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
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
        V_in = torch.where(hidden_nodes[..., None], self.visual_mask.to(V.dtype).expand_as(V), V)
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

    # ---- parameter groups for the trainer ----
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """`snn`: the SNN encoders (SGD; frozen in phase 1). `main`: everything else (AdamW)."""
        snn = {id(p) for p in self.visual.snn_parameters()}
        return {"snn": [p for p in self.parameters() if id(p) in snn],
                "main": [p for p in self.parameters() if id(p) not in snn]}
