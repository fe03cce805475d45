"""Tokenizer, single-stream transformer (shapes, masking, unimodal passes, gradients), MiniLM loading."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from models.text import SingleStreamTransformer, TransformerConfig, build_tokenizer, load_minilm, minilm_dir, tokenize

B, K, MAX_LEN = 3, 5, 16


@pytest.fixture(autouse=True, scope="module")
def _offline() -> Iterator[None]:
    """Nothing may be downloaded: everything comes from the installed package."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def config(tok, name: str = "tiny", **kw) -> TransformerConfig:
    return TransformerConfig.preset(name, vocab_size=len(tok), max_text_len=MAX_LEN, max_visual_tokens=K, **kw)


@pytest.fixture(scope="module")
def tiny(tok) -> SingleStreamTransformer:
    torch.manual_seed(0)
    return SingleStreamTransformer(config(tok)).eval()


def batch(tok, d: int) -> tuple[torch.Tensor, ...]:
    ids, mask = tokenize(tok, ["a red circle left of a blue square", "two cubes", "is it green?"], MAX_LEN)
    visual = torch.randn(B, K, d)
    node_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    return ids, mask, visual, node_mask


def test_tokenizer_knows_ordinary_words(tok) -> None:
    ids, mask = tokenize(tok, ["a red circle left of a blue square"], MAX_LEN)
    assert tok.unk_token_id not in ids[0].tolist()
    assert tok.tokens(ids[0].tolist()) == \
        ["[CLS]", "a", "red", "circle", "left", "of", "a", "blue", "square", "[SEP]"]
    assert mask.tolist() == [[1] * 10]
    assert tokenize(tok, ["A RED Circle"], MAX_LEN)[0].tolist() == tokenize(tok, ["a red circle"], MAX_LEN)[0].tolist()


def test_tokenize_pads_to_longest_and_truncates(tok) -> None:
    ids, mask = tokenize(tok, ["a red circle left of a blue square", "a cube"], MAX_LEN)
    assert ids.shape == mask.shape == (2, 10) and ids.dtype == mask.dtype == torch.long
    assert mask[1].tolist() == [1] * 4 + [0] * 6
    assert ids[1, 3].item() == tok.sep_token_id and (ids[1, 4:] == tok.pad_token_id).all()
    assert (ids[:, 0] == tok.cls_token_id).all()
    short, short_mask = tokenize(tok, ["a red circle left of a blue square"], 5)
    assert short.shape == (1, 5) and short_mask.all()
    assert short[0, 0].item() == tok.cls_token_id and short[0, -1].item() == tok.sep_token_id


def test_presets() -> None:
    for name, (d, layers, heads, ffn) in {"tiny": (128, 2, 4, 512), "paper": (768, 12, 8, 3072),
                                          "minilm": (384, 6, 12, 1536)}.items():
        c = TransformerConfig.preset(name, vocab_size=100, max_text_len=8, max_visual_tokens=4)
        assert (c.d, c.layers, c.heads, c.ffn, c.dropout) == (d, layers, heads, ffn, 0.1)


def test_shapes(tok, tiny) -> None:
    ids, mask, visual, node_mask = batch(tok, 128)
    L = ids.shape[1]
    with torch.no_grad():
        assert tiny(ids, mask, visual, node_mask).shape == (B, L + K, 128)
        assert tiny.encode_text(ids, mask).shape == (B, L, 128)
        assert tiny.encode_image(visual, node_mask).shape == (B, 1 + K, 128)
    assert tiny.word_embeddings.weight.shape == (len(tok), 128)


def test_padded_slots_and_text_do_not_change_real_outputs(tok, tiny) -> None:
    ids, mask, visual, node_mask = batch(tok, 128)
    real = torch.cat([mask.bool(), node_mask], 1)
    ids2, visual2 = ids.clone(), visual.clone()
    ids2[mask == 0] = tok.token_id("square")
    visual2[~node_mask] = 100 * torch.randn(int((~node_mask).sum()), 128)
    with torch.no_grad():
        out, out2 = tiny(ids, mask, visual, node_mask), tiny(ids2, mask, visual2, node_mask)
        img, img2 = tiny.encode_image(visual, node_mask), tiny.encode_image(visual2, node_mask)
        txt, txt2 = tiny.encode_text(ids, mask), tiny.encode_text(ids2, mask)
    torch.testing.assert_close(out[real], out2[real])
    torch.testing.assert_close(img[:, 0], img2[:, 0])
    torch.testing.assert_close(txt[mask.bool()], txt2[mask.bool()])
    # a real slot does change the joint [CLS]
    visual2[0, 0] += torch.randn(128)
    with torch.no_grad():
        assert not torch.allclose(tiny(ids, mask, visual2, node_mask)[0, 0], out[0, 0])


def test_text_pass_ignores_image_and_joint_pass_uses_it(tok, tiny) -> None:
    ids, mask, visual, node_mask = batch(tok, 128)
    with torch.no_grad():
        txt = tiny.encode_text(ids, mask)
        joint = tiny(ids, mask, visual, node_mask)
        joint2 = tiny(ids, mask, torch.randn_like(visual), node_mask)
        joint_empty = tiny(ids, mask, visual, torch.zeros_like(node_mask))
    assert not torch.allclose(joint[:, 0], joint2[:, 0])
    # with every slot padded the joint text outputs are the text-only ones
    torch.testing.assert_close(joint_empty[:, : ids.shape[1]], txt)


def test_empty_image_is_finite(tok, tiny) -> None:
    _, _, visual, node_mask = batch(tok, 128)
    with torch.no_grad():
        assert torch.isfinite(tiny.encode_image(visual, torch.zeros_like(node_mask))).all()


def test_gradients_reach_visual_and_parameters(tok) -> None:
    torch.manual_seed(0)
    model = SingleStreamTransformer(config(tok)).train()
    ids, mask, visual, node_mask = batch(tok, 128)
    visual.requires_grad_(True)
    probe = torch.randn(model.cfg.d)   # a plain .sum() of a LayerNorm output has zero gradient but for rounding
    loss = model(ids, mask, visual, node_mask)[:, 0] @ probe + model.encode_image(visual, node_mask)[:, 0] @ probe
    loss = loss.sum()
    loss.backward()
    assert visual.grad[node_mask].abs().sum() > 0
    assert (visual.grad[~node_mask] == 0).all()
    for name in ["img_token", "visual_pos.weight", "bert.embeddings.word_embeddings.weight",
                 "bert.encoder.layer.1.output.dense.weight"]:
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.fixture(scope="module")
def minilm(tok) -> tuple[SingleStreamTransformer, list[str]]:
    model = SingleStreamTransformer(config(tok, "minilm")).eval()
    return model, load_minilm(model)


def test_load_minilm_copies_the_shipped_weights(minilm) -> None:
    model, random_keys = minilm
    assert random_keys == ["img_token", "visual_pos.weight"]
    shipped = load_file(str(minilm_dir() / "model.safetensors"))
    state = model.bert.state_dict()
    for key in ["embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.weight"]:
        torch.testing.assert_close(state[key], shipped[key])
    torch.testing.assert_close(state["embeddings.position_embeddings.weight"],
                               shipped["embeddings.position_embeddings.weight"][:MAX_LEN])


def test_loaded_minilm_ranks_paraphrases(tok, minilm) -> None:
    model, _ = minilm
    texts = ["a man is playing guitar", "a person plays a guitar", "the stock market fell today"]
    ids, mask = tokenize(tok, texts, MAX_LEN)
    with torch.no_grad():
        out = model.encode_text(ids, mask)
    pooled = F.normalize((out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)
    sim = pooled @ pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3


def test_load_minilm_fewer_layers(tok) -> None:
    model = SingleStreamTransformer(TransformerConfig(d=384, layers=2, heads=12, ffn=1536, vocab_size=len(tok),
                                                      max_text_len=MAX_LEN, max_visual_tokens=K))
    assert load_minilm(model) == ["img_token", "visual_pos.weight"]


@pytest.mark.parametrize("change, word", [(dict(d=128, heads=4, ffn=512), "d="), (dict(layers=7), "layers="),
                                          (dict(heads=6), "heads="), (dict(vocab_size=1000), "vocab_size=")])
def test_load_minilm_rejects_mismatched_config(tok, change: dict, word: str) -> None:
    base = dict(d=384, layers=6, heads=12, ffn=1536, vocab_size=len(tok), max_text_len=MAX_LEN, max_visual_tokens=K)
    model = SingleStreamTransformer(TransformerConfig(**{**base, **change}))
    with pytest.raises(ValueError, match=word):
        load_minilm(model)
