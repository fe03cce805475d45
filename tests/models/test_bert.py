"""models/bert.py and the tokenizer against transformers (the reference they replace): same draws, same bits.

The stages never import transformers (~2 s of start-up); these tests do, to hold the replacement to it.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from models.text import SingleStreamTransformer, TransformerConfig, build_tokenizer, minilm_dir, tokenize

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from transformers import BertConfig, BertModel
    from transformers import BertTokenizer as ReferenceTokenizer
    from transformers.masking_utils import create_bidirectional_mask

TEXTS = ["a red circle left of a blue square", "Is there a GREEN cube?", "", "Café naïve ÉLAN", "日本語のテキスト",
         "emoji 🙂 here", "a\tb\nc\x00d", "don't stop-believing!!", "straße", "[MASK] [CLS] hello [SEP]",
         "word " * 60, "x" * 300]


def reference(cfg: TransformerConfig) -> BertModel:
    return BertModel(BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
        intermediate_size=cfg.ffn, hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
        max_position_embeddings=cfg.max_text_len, type_vocab_size=2), add_pooling_layer=False)


def reference_encode(ref: BertModel, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What models/text.py ran before models/bert.py: transformers' mask and encoder."""
    attn = create_bidirectional_mask(config=ref.config, inputs_embeds=x, attention_mask=mask)
    return ref.encoder(x, attention_mask=attn).last_hidden_state


@pytest.mark.parametrize("max_len", [40, 6])
def test_tokenizer_matches_transformers(max_len: int) -> None:
    ref = ReferenceTokenizer(vocab=str(minilm_dir() / "vocab.txt"), do_lower_case=True)
    tok = build_tokenizer()
    enc = ref(TEXTS, padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
    ids, mask = tokenize(tok, TEXTS, max_len)
    assert torch.equal(ids, enc["input_ids"].long()) and torch.equal(mask, enc["attention_mask"].long())
    assert (len(tok), tok.mask_token_id, tok.all_special_ids) == (len(ref), ref.mask_token_id, ref.all_special_ids)


def test_unknown_special_token_is_named() -> None:
    with pytest.raises(ValueError, match="no token 'not-a-word-piece'"):
        build_tokenizer().token_id("not-a-word-piece")


def test_seeded_weights_match_transformers() -> None:
    cfg = TransformerConfig.preset("tiny", vocab_size=300, max_text_len=12, max_visual_tokens=4)
    torch.manual_seed(0)
    ref = reference(cfg).state_dict()
    torch.manual_seed(0)
    ours = SingleStreamTransformer(cfg).bert.state_dict()
    assert set(ours) == set(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


@pytest.mark.parametrize("train", [False, True])
def test_outputs_and_gradients_match_transformers(train: bool) -> None:
    cfg = TransformerConfig.preset("tiny", vocab_size=300, max_text_len=12, max_visual_tokens=4)
    torch.manual_seed(0)
    ours = SingleStreamTransformer(cfg).train(train)
    ref = reference(cfg).train(train)
    ref.load_state_dict(ours.bert.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, cfg.d, generator=g)
    for mask in (torch.ones(3, 7, dtype=torch.bool), torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6]).bool()):
        outs = []
        for run in (ours.bert.encode, lambda e, m: reference_encode(ref, e, m)):
            e = x.clone().requires_grad_()
            torch.manual_seed(2)                                   # the same dropout draws
            out = run(e, mask)
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
            outs.append((out, e.grad))
        (o1, g1), (o2, g2) = outs
        assert torch.equal(o1, o2) and torch.equal(g1, g2)
    for (name, p), q in zip(ours.bert.named_parameters(), ref.parameters()):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad), name   # embeddings: no grad
    ids = torch.randint(1, 300, (3, 9), generator=g)
    torch.manual_seed(3)
    a = ours.bert.embeddings(ids)
    torch.manual_seed(3)
    assert torch.equal(a, ref.embeddings(input_ids=ids))


def test_attention_dropout_acts_in_training_only() -> None:
    cfg = TransformerConfig.preset("tiny", vocab_size=300, max_text_len=12, max_visual_tokens=4)
    torch.manual_seed(0)
    bert = SingleStreamTransformer(cfg).bert
    x, mask = torch.randn(2, 5, cfg.d), torch.ones(2, 5, dtype=torch.bool)
    train = bert.encode(x, mask)
    bert.eval()
    assert not torch.allclose(train, bert.encode(x, mask)) and torch.equal(bert.encode(x, mask), bert.encode(x, mask))
