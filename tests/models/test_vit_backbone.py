"""ViTTrunk: patch-token map shape and stride, mask pooling of it, loading a 224 state dict into another size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import models as tvm
from torchvision.models.vision_transformer import VisionTransformer

from models import pooling
from models.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneError,
    ResNetTrunk,
    ViTTrunk,
    build_trunk,
    fit_positions,
    stride_of,
)

torch.set_num_threads(2)


def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 B x S x S x 3, as the features stage feeds the trunk."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))


def build(size: int, seed: int = 0, state: dict | None = None) -> ViTTrunk:
    torch.manual_seed(seed)
    return ViTTrunk(size, state).for_inference()


@pytest.fixture(scope="module")
def donor_224() -> dict[str, torch.Tensor]:
    """A torchvision ViT-B/16 state dict at torchvision's 224 (random: nothing is downloaded), 10-class head."""
    torch.manual_seed(3)
    return tvm.vit_b_16(weights=None, num_classes=10).state_dict()


@pytest.mark.parametrize("size", [128, 224])
def test_map_shape_and_stride(size: int) -> None:
    net = build(size)
    assert (net.channels, net.stride) == (768, 16)
    with torch.inference_mode():
        out = net(images(1, size))
    assert out.shape == (1, 768, size // 16, size // 16)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_map_is_the_encoder_output_without_the_class_token() -> None:
    """Token i of torchvision's own forward (after the encoder's final LayerNorm) is map cell (i // w, i % w)."""
    net = build(128, seed=4)
    torch.manual_seed(4)
    ref = tvm.vit_b_16(weights=None, image_size=128).eval()
    seen: list[torch.Tensor] = []
    ref.encoder.register_forward_hook(lambda _m, _i, out: seen.append(out))
    x = images(2, 128)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        ref((x.permute(0, 3, 1, 2).float() - mean) / std)
        got = net(x)
    tokens = seen[0][:, 1:]                                   # 2 x 64 x 768
    torch.testing.assert_close(got.flatten(2).transpose(1, 2), tokens)


def test_mask_pooling_gives_one_vector_per_segment() -> None:
    """Pooled as the ResNet map is: a segment's vector is the mean over its pixels of their cell's token."""
    slots = np.zeros((128, 128), np.int64)
    slots[:, :64] = 1                    # left half
    slots[10:40, 70:120] = 2             # a block across cell borders
    slots[100:105, 100:103] = 3          # smaller than one 16-pixel cell
    net = build(128)
    with torch.inference_mode():
        fmap = net(images(1, 128))
    cov = torch.from_numpy(pooling.mask_coverage(slots, 3, (8, 8)))[None]
    nodes = pooling.pool(fmap, cov)[0]
    assert nodes.shape == (3, 768)
    grid = np.arange(128) // 16
    cells = fmap[0].double().numpy()[:, grid[:, None], grid[None, :]]   # 768 x 128 x 128: each pixel's token
    for k in (1, 2, 3):
        np.testing.assert_allclose(nodes[k - 1].numpy(), cells[:, slots == k].mean(1), rtol=1e-5, atol=1e-5)


def test_positions_are_resized_bicubic_with_the_class_token_kept(donor_224: dict[str, torch.Tensor]) -> None:
    pos = donor_224["encoder.pos_embedding"]                  # 1 x (1 + 14 * 14) x 768
    fitted = fit_positions(donor_224, 128)
    assert torch.equal(donor_224["encoder.pos_embedding"], pos), "the caller's state dict must not change"
    new = fitted["encoder.pos_embedding"]
    assert new.shape == (1, 1 + 8 * 8, 768)
    assert torch.equal(new[:, 0], pos[:, 0])
    grid = pos[0, 1:].T.reshape(1, 768, 14, 14)
    want = F.interpolate(grid, size=(8, 8), mode="bicubic", align_corners=True).reshape(768, 64).T
    torch.testing.assert_close(new[0, 1:], want)
    corners = [0, 7, 56, 63], [0, 13, 182, 195]               # align_corners: the corner tokens are kept
    torch.testing.assert_close(new[0, 1:][corners[0]], pos[0, 1:][corners[1]])
    assert fit_positions(donor_224, 224)["encoder.pos_embedding"].equal(pos)


def test_224_state_dict_loads_into_a_128_model_deterministically(donor_224: dict[str, torch.Tensor]) -> None:
    a, b = build(128, seed=0, state=donor_224), build(128, seed=1, state=donor_224)  # weights come from the donor
    sa = a.net.state_dict()
    assert torch.equal(sa["conv_proj.weight"], donor_224["conv_proj.weight"])
    assert torch.equal(sa["encoder.layers.encoder_layer_11.mlp.3.weight"],
                       donor_224["encoder.layers.encoder_layer_11.mlp.3.weight"])
    assert torch.equal(sa["encoder.pos_embedding"], fit_positions(donor_224, 128)["encoder.pos_embedding"])
    x = images(2, 128, seed=5)
    with torch.inference_mode():
        out = a(x)
        assert torch.equal(out, b(x)) and torch.equal(out, a(x))
    assert torch.isfinite(out).all()


def test_wrong_width_state_dict_raises() -> None:
    torch.manual_seed(0)
    tiny = VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768)
    with pytest.raises(BackboneError, match=r"weights do not fit vit_b_16: size mismatch for class_token: ") as e:
        ViTTrunk(128, tiny.state_dict())
    assert "\n" not in str(e.value) and str(e.value).endswith(" more)")   # one line, not one per tensor


def test_resnet_state_dict_raises() -> None:
    torch.manual_seed(0)
    with pytest.raises(BackboneError, match=r"weights do not fit vit_b_16: missing \['class_token'.*unexpected"):
        ViTTrunk(128, tvm.resnet18(weights=None).state_dict())


def test_non_square_position_grid_raises(donor_224: dict[str, torch.Tensor]) -> None:
    state = donor_224 | {"encoder.pos_embedding": donor_224["encoder.pos_embedding"][:, :-1]}
    with pytest.raises(BackboneError, match=r"weights do not fit vit_b_16: seq_length is not a perfect square"):
        ViTTrunk(128, state)


def test_image_size_must_be_a_multiple_of_the_patch() -> None:
    with pytest.raises(BackboneError, match=r"vit_b_16 needs an image size that is a multiple of 16, got 72"):
        ViTTrunk(72)


def test_build_trunk_and_stride_of() -> None:
    assert stride_of("vit_b_16", "layer4") == 16 and stride_of("resnet18", "layer4") == 32
    torch.manual_seed(0)
    assert isinstance(build_trunk("resnet18", "layer2", 64), ResNetTrunk)
    assert isinstance(build_trunk("vit_b_16", "layer3", 64), ViTTrunk)
