"""BERT encoder (Devlin et al. 2019) on torch alone: post-LN layers, exact GELU, scaled-dot-product attention.

It computes what transformers' `BertModel(add_pooling_layer=False)` computes with its default (sdpa)
attention, with the same parameter names, initialisation and random draws, so seeded initial weights,
earlier checkpoints and the shipped MiniLM weights are unchanged (a whole training run matches only to
rounding: README, Stage start-up); importing transformers cost ~2 s of every model stage's start-up.
tests/models/test_bert.py holds it to transformers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD_ID = 0          # [PAD] in the BERT vocabulary: its word-embedding row starts at zero


@dataclass(frozen=True)
class BertShape:
    vocab_size: int
    d: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    dropout: float = 0.1
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12


class Embeddings(nn.Module):
    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(s.vocab_size, s.d, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(s.max_positions, s.d)
        self.token_type_embeddings = nn.Embedding(s.type_vocab_size, s.d)
        self.LayerNorm = nn.LayerNorm(s.d, eps=s.layer_norm_eps)
        self.dropout = nn.Dropout(s.dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        """(B, L) ids -> word + type 0 + position embeddings, LayerNorm, dropout (that order of sums)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(torch.zeros_like(input_ids))
        x = x + self.position_embeddings(positions)     # lookups, not slices: the same gradient sums as BERT's
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.heads = s.heads
        self.query, self.key, self.value = (nn.Linear(s.d, s.d) for _ in range(3))
        self.dropout = nn.Dropout(s.dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, N, d = x.shape
        q, k, v = (proj(x).view(B, N, self.heads, -1).transpose(1, 2) for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=q.shape[-1] ** -0.5,
                                             dropout_p=self.dropout.p if self.training else 0.0)
        return out.transpose(1, 2).reshape(B, N, d)


class AddNorm(nn.Module):
    """LN(x + dropout(dense(h))): the output of BERT's attention and feed-forward blocks."""

    def __init__(self, d_in: int, s: BertShape) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, s.d)
        self.LayerNorm = nn.LayerNorm(s.d, eps=s.layer_norm_eps)
        self.dropout = nn.Dropout(s.dropout)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class Attention(nn.Module):
    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.self = SelfAttention(s)
        self.output = AddNorm(s.d, s)


class Intermediate(nn.Module):
    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.dense = nn.Linear(s.d, s.ffn)


class Layer(nn.Module):
    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.attention = Attention(s)
        self.intermediate = Intermediate(s)
        self.output = AddNorm(s.ffn, s)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class Encoder(nn.Module):
    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(s) for _ in range(s.layers))


class Bert(nn.Module):
    """`embeddings` and `encoder.layer[i]`, named as in transformers so that state dicts are interchangeable."""

    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.shape = s
        self.embeddings = Embeddings(s)
        self.encoder = Encoder(s)
        self.apply(self._init)          # children first, after every default init: transformers' draw order

    def _init(self, m: nn.Module) -> None:
        std = self.shape.initializer_range
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """(B, N, d) embeddings, (B, N) bool key mask (True = attend to) -> (B, N, d) last hidden states."""
        B, N = mask.shape
        attn = None if bool(mask.all()) else mask[:, None, None, :].expand(B, 1, N, N).contiguous()
        for layer in self.encoder.layer:
            x = layer(x, attn)
        return x
