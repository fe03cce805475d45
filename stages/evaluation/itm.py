"""ITC embeddings and ITM scores of pretraining pairs with a fixed model: faiss recall and ITM
re-ranking, shared by `reorder` and the evaluation of retrieval."""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from models.gshn import GSHN
from models.nodes import collate_nodes
from models.text import tokenize
from stages.data.pairs import PairCollator, Samples


class Scorer:
    """ITC embeddings and ITM scores of the samples (caption 0 each) with a fixed model."""

    def __init__(self, model: GSHN, samples: Samples, K: int, max_text_len: int, batch_size: int,
                 device: torch.device, progress: bool) -> None:
        if model.training:   # train mode would draw new spike noise per call: scores would not repeat
            raise ValueError("Scorer needs the model in eval mode (model.eval())")
        self.model, self.N, self.K, self.bs = model, len(samples), K, batch_size
        self.device, self.progress = device, progress
        self.collator = PairCollator(samples, K, max_text_len)
        self.embeddings: tuple[torch.Tensor, torch.Tensor] | None = None   # from embed(): reused by itm()
        ids, mask = tokenize(self.collator.tokenizer, [c[0] for c in samples.captions], max_text_len)
        self.ids, self.mask = ids, mask

    def close(self) -> None:
        self.collator.close()

    def chunks(self) -> int:
        return -(-self.N // self.bs)

    def _text(self, idx: np.ndarray | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        ids, mask = self.ids[idx], self.mask[idx]
        L = int(mask.sum(1).max())          # pad to the longest in the batch, as in training
        return ids[:, :L].to(self.device), mask[:, :L].to(self.device)

    def visual(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Visual tokens and node mask of chunk `chunk` (same values on every call: the model is in eval mode,
        whose spike coding uses fixed noise)."""
        idx = list(range(chunk * self.bs, min(self.N, (chunk + 1) * self.bs)))
        nodes = collate_nodes(self.collator.nodes(idx), self.K).to(self.device)
        return self.model.visual(nodes).tokens, nodes.node_mask

    def embed(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 256) normalised ITC image and text embeddings (float32)."""
        img, txt = [], []
        for chunk in tqdm(range(self.chunks()), desc="reorder embed", unit="batch", disable=not self.progress):
            V, nmask = self.visual(chunk)
            ids, tmask = self._text(range(chunk * self.bs, chunk * self.bs + V.shape[0]))
            i, t = self.model.itc.embed(*self.model.unimodal(V, nmask, ids, tmask))
            img.append(i.float().cpu().numpy()), txt.append(t.float().cpu().numpy())
        self.embeddings = (torch.as_tensor(np.concatenate(img)), torch.as_tensor(np.concatenate(txt)))
        return self.embeddings[0].numpy(), self.embeddings[1].numpy()

    def itm(self, image: np.ndarray, text: np.ndarray, desc: str) -> np.ndarray:
        """ITM match probability of (image of sample image[p], caption-0 text of sample text[p]) per pair p."""
        image, text = np.asarray(image, np.int64), np.asarray(text, np.int64)
        out = np.empty(len(image), np.float32)
        order = np.argsort(image, kind="stable")
        chunk_of = image[order] // self.bs
        bounds = np.flatnonzero(np.diff(chunk_of)) + 1
        with tqdm(total=len(image), desc=desc, unit="pair", disable=not self.progress) as bar:
            for part in (np.split(order, bounds) if len(order) else []):   # pairs of one image chunk
                chunk = int(image[part[0]] // self.bs)
                V, nmask = self.visual(chunk)
                for s in range(0, len(part), self.bs):
                    p = part[s: s + self.bs]
                    local = torch.as_tensor(image[p] - chunk * self.bs, device=self.device)
                    rows = torch.as_tensor(text[p])
                    ids, tmask = self.ids[rows].to(self.device), self.mask[rows].to(self.device)
                    # all K node slots: reorder's scores were computed so (the cut changes float rounding)
                    pair = None if self.embeddings is None else (self.embeddings[0][image[p]].to(self.device),
                                                                 self.embeddings[1][rows].to(self.device))
                    prob = itm_probability(self.model, ids, tmask, V[local], nmask[local], cut_nodes=False,
                                           embeddings=pair)
                    out[p] = prob.cpu().numpy()
                    bar.update(len(p))
        return out


def _itm_logits(model: GSHN, text_ids: torch.Tensor, text_mask: torch.Tensor, tokens: torch.Tensor,
                node_mask: torch.Tensor, cut_nodes: bool,
                embeddings: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """ITM logits ("no match", "match") of each row's text with its visual tokens. Padding that every row
    shares is cut first: text always, node slots unless `cut_nodes` is off (real tokens come first in both)."""
    n = int(text_mask.sum(1).max())
    k = int(node_mask.sum(1).max()) if cut_nodes else node_mask.shape[1]
    return model.itm_logits(text_ids[:, :n], text_mask[:, :n], tokens[:, :k], node_mask[:, :k], embeddings).float()


def itm_probability(model: GSHN, text_ids: torch.Tensor, text_mask: torch.Tensor, tokens: torch.Tensor,
                    node_mask: torch.Tensor, cut_nodes: bool = True,
                    embeddings: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """ITM match probability of each row (reorder's scores)."""
    return torch.softmax(_itm_logits(model, text_ids, text_mask, tokens, node_mask, cut_nodes, embeddings), -1)[:, 1]


def itm_log_odds(model: GSHN, text_ids: torch.Tensor, text_mask: torch.Tensor, tokens: torch.Tensor,
                 node_mask: torch.Tensor, cut_nodes: bool = True,
                 embeddings: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """ITM log-odds of a match (logit "match" - logit "no match"): retrieval's re-ranking score, which a
    probability would saturate at 1.0 in float32."""
    logits = _itm_logits(model, text_ids, text_mask, tokens, node_mask, cut_nodes, embeddings)
    return logits[:, 1] - logits[:, 0]


def recall(img: np.ndarray, txt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss IndexFlatIP over the texts: each image's top-k other samples -> (ids (N, k), sims (N, k))."""
    import faiss

    img = np.ascontiguousarray(img, dtype=np.float32)
    txt = np.ascontiguousarray(txt, dtype=np.float32)
    N = txt.shape[0]
    if not 1 <= k <= N - 1:
        raise ValueError(f"k={k} must be in 1..{N - 1}")
    index = faiss.IndexFlatIP(txt.shape[1])
    index.add(txt)
    sims, ids = index.search(img, k + 1)
    keep = ids != np.arange(N)[:, None]
    keep[keep.all(1), -1] = False        # the anchor was not in its own top k+1: drop the (k+1)-th
    return ids[keep].reshape(N, k).astype(np.int64), sims[keep].reshape(N, k)
