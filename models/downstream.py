"""Downstream classifiers on top of a pretrained GSHN: VQA, visual entailment, NLVR2.

The joint pass of the single-stream transformer (text + visual tokens), mean-pooled, feeds a task
head. `pool` picks the head input:
- "joint": the mean over all real tokens of the joint pass;
- "text": the mean over its text positions (which still see the image through attention);
- "product": the joint mean, concatenated with the Hadamard product of the unimodal embeddings
  (text-only and image-only passes, as ITC pools them), each standardised by a BatchNorm. The
  product is the classic VQA fusion (Antol et al. 2015). Without it, questions that match a word
  against the image ("is there a red shape?") plateau at the text prior for 1000+ steps; without the
  standardisation, the product alone plateaus just as long (README "Downstream heads").
NLVR2 encodes the sentence with each image and concatenates the two head inputs; with "product"
the sentence's own (standardised) text-only embedding, which both images share, is appended once
(8,000 pairs seen: -0.002 over blind without it, +0.016 with it; README "Downstream heads"). The
`blind` variant (the text-only baseline) has the same transformer and head, but no visual tokens:
it pools the text-only pass (zeros in place of the product). Each image slot of a batch holds the
distinct images once (a NodeBatch) and an index from samples to them, so several questions about
one image cost one visual-encoder pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models import heads
from models.gshn import GSHN, image_embedding, text_embedding
from models.hybrid import VisualEncoder
from models.nodes import NodeBatch
from models.pooling import masked_mean
from models.text import SingleStreamTransformer

TASKS = ("vqa", "ve", "nlvr2")
POOLS = ("joint", "text", "product")
IMAGES_PER_SAMPLE = {"vqa": 1, "ve": 1, "nlvr2": 2}


@dataclass
class TaskBatch:
    text_ids: Tensor             # (B, L)
    text_mask: Tensor            # (B, L)
    images: list[NodeBatch]      # IMAGES_PER_SAMPLE[task] slots of distinct images; empty for the blind model
    image_index: list[Tensor]    # per slot: (B,) row of that slot's NodeBatch for each sample
    targets: Tensor              # VQA: (B, A) soft scores; VE / NLVR2: (B,) class ids

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(self.text_ids.to(device), self.text_mask.to(device), [n.to(device) for n in self.images],
                         [i.to(device) for i in self.image_index], self.targets.to(device))


class TaskModel(nn.Module):
    def __init__(self, task: str, transformer: SingleStreamTransformer, visual: VisualEncoder | None,
                 n_out: int, dropout: float = 0.1, pool: str = "joint") -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {TASKS}")
        if pool not in POOLS:
            raise ValueError(f"unknown pooling {pool!r}; known: {POOLS}")
        if n_out < 2:
            raise ValueError(f"a {task} head needs at least 2 outputs, got {n_out}")
        self.task, self.n_out, self.pool = task, n_out, pool
        self.transformer, self.visual = transformer, visual
        d = transformer.cfg.d
        width = 2 * d if pool == "product" else d
        self.shared_text = pool == "product" and IMAGES_PER_SAMPLE[task] == 2
        self.head = heads.MLPHead(width * IMAGES_PER_SAMPLE[task] + (d if self.shared_text else 0), n_out,
                                  dropout=dropout)
        if pool == "product" and visual is not None:
            self.norm_text, self.norm_image = nn.BatchNorm1d(d), nn.BatchNorm1d(d)

    @classmethod
    def from_pretrained(cls, model: GSHN, task: str, n_out: int, blind: bool = False,
                        dropout: float = 0.1, pool: str = "joint") -> TaskModel:
        """Takes the pretrained transformer (and visual encoder unless blind); pretraining heads are left out."""
        return cls(task, model.transformer, None if blind else model.visual, n_out, dropout, pool)

    @property
    def blind(self) -> bool:
        return self.visual is None

    @staticmethod
    def stored_outputs(state: dict[str, Tensor]) -> int | None:
        """The head's number of outputs in a saved state dict (None when it holds no task head)."""
        weight = state.get("head.out.weight")
        return None if weight is None else int(weight.shape[0])

    def text_feature(self, text_ids: Tensor, text_mask: Tensor) -> Tensor | None:
        """The standardised text-only embedding of the product pooling (None for other poolings and
        the blind model); NLVR2's two images share it."""
        if self.pool != "product" or self.visual is None:
            return None
        return self.norm_text(text_embedding(self.transformer, text_ids, text_mask))

    def pooled(self, text_ids: Tensor, text_mask: Tensor, nodes: NodeBatch | None = None,
               index: Tensor | None = None, text: Tensor | None = None) -> Tensor:
        """The head input of each text with image `index[b]` of `nodes` (module docstring); `text` is
        `text_feature` when already computed. Means rather than [CLS]: the pretrained [CLS] only
        ever fed ITM, which stays near chance in short CPU pretraining, so it starts almost
        input-independent (scenes VQA, equal budget: [CLS] 0.329, joint mean 0.434)."""
        if self.visual is None:
            text = text_embedding(self.transformer, text_ids, text_mask)
            return torch.cat([text, torch.zeros_like(text)], 1) if self.pool == "product" else text
        if nodes is None or index is None:
            raise ValueError("this model needs images: the batch has none")
        visual = self.visual(nodes).tokens
        tokens, node_mask = visual[index], nodes.node_mask[index]
        seq = self.transformer(text_ids, text_mask, tokens, node_mask)
        if self.pool == "text":
            return masked_mean(seq[:, : text_ids.shape[1]], text_mask)
        joint = masked_mean(seq, torch.cat([text_mask.bool(), node_mask.bool()], 1))
        if self.pool == "joint":
            return joint
        if text is None:
            text = self.text_feature(text_ids, text_mask)
        image = self.norm_image(image_embedding(self.transformer, visual, nodes.node_mask))[index]
        return torch.cat([joint, text * image], 1)

    def logits(self, batch: TaskBatch) -> Tensor:
        want = 0 if self.blind else IMAGES_PER_SAMPLE[self.task]
        if len(batch.images) != want or len(batch.image_index) != want:
            raise ValueError(f"{self.task}{' (blind)' if self.blind else ''} needs {want} image slots, "
                             f"the batch has {len(batch.images)}")
        if self.blind:
            pooled = [self.pooled(batch.text_ids, batch.text_mask)] * IMAGES_PER_SAMPLE[self.task]
            text = pooled[0][:, : self.transformer.cfg.d]   # its text embedding fills the shared slot
        else:
            text = self.text_feature(batch.text_ids, batch.text_mask)
            pooled = [self.pooled(batch.text_ids, batch.text_mask, nodes, index, text)
                      for nodes, index in zip(batch.images, batch.image_index)]
        if len(pooled) == 1:
            return self.head(pooled[0])
        return self.head(heads.pair_features(*pooled, *([text] if self.shared_text else [])))

    def forward(self, batch: TaskBatch) -> dict[str, Tensor]:
        logits = self.logits(batch)
        if self.task == "vqa":
            out = {"loss": heads.vqa_loss(logits, batch.targets), "acc": heads.vqa_score(logits, batch.targets)}
        else:
            out = {"loss": heads.class_loss(logits, batch.targets), "acc": heads.class_accuracy(logits, batch.targets)}
        for branch in self.visual.spiking_branches() if self.visual is not None else []:
            rates = branch.snn.firing_rates()
            out["firing_rate"] = torch.tensor(sum(rates.values()) / max(len(rates), 1))
        return out

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """`snn`: the SNN encoders (SGD); `main`: everything else (AdamW)."""
        snn = {id(p) for p in self.visual.snn_parameters()} if self.visual is not None else set()
        return {"snn": [p for p in self.parameters() if id(p) in snn],
                "main": [p for p in self.parameters() if id(p) not in snn]}
