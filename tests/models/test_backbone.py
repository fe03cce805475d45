"""ResNetTrunk: shapes, channels and stride per stage; BN folding; seeding; loading state dicts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import models as tvm

from models.backbone import IMAGENET_MEAN, IMAGENET_STD, BackboneError, ResNetTrunk

torch.set_num_threads(2)

SIZE = 64


def images(batch: int = 2, h: int = SIZE, w: int = SIZE, seed: int = 0) -> torch.Tensor:
    """uint8 B x H x W x 3, as the features stage feeds the trunk."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8))


def build(name: str, layer: str, seed: int = 0, state: dict | None = None) -> ResNetTrunk:
    torch.manual_seed(seed)
    return ResNetTrunk(name, layer, state)


def randomise_batchnorm(net: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial running stats and affine params, so folding BN is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def reference_trunk(net: torch.nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """A plain torchvision resnet run by hand up to `layer` on ImageNet-normalised input."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    y = (x.permute(0, 3, 1, 2).float() - mean) / std
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        y = getattr(net, name)(y)
        if name == layer:
            return y
    raise AssertionError(layer)


def assert_close_to_scale(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> None:
    scale = want.abs().max().item()
    assert scale > 0
    err = (got - want).abs().max().item()
    assert err <= rtol * scale + 1e-6, f"max abs diff {err:.3g} vs scale {scale:.3g}"


@pytest.mark.parametrize("name, layer, channels, stride", [
    ("resnet18", "layer2", 128, 8),
    ("resnet18", "layer3", 256, 16),
    ("resnet18", "layer4", 512, 32),
    ("resnet50", "layer3", 1024, 16),
])
def test_output_shape_channels_stride(name: str, layer: str, channels: int, stride: int) -> None:
    net = build(name, layer).eval()
    assert net.channels == channels
    assert net.stride == stride
    with torch.inference_mode():
        out = net(images())
    assert out.shape == (2, channels, SIZE // stride, SIZE // stride)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("h, w", [(70, 50), (33, 97)])
def test_map_size_is_ceil_of_image_over_stride(h: int, w: int) -> None:
    """The features stage sizes the coverage grid as ceil(size / stride): the trunk must agree."""
    net = build("resnet18", "layer3").eval()
    with torch.inference_mode():
        out = net(images(1, h, w))
    assert out.shape[-2:] == (-(-h // 16), -(-w // 16))


@pytest.mark.parametrize("name, layer", [("resnet18", "layer3"), ("resnet50", "layer3")])
def test_for_inference_matches_unfused_eval(name: str, layer: str) -> None:
    net = build(name, layer)
    randomise_batchnorm(net)
    net.eval()
    x = images()
    with torch.inference_mode():
        want = net(x)
    fused = net.for_inference()
    assert not fused.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()), "BN was not folded"
    with torch.inference_mode():
        got = fused(x)
    assert got.shape == want.shape
    assert_close_to_scale(got, want)


def test_seeded_construction_is_deterministic() -> None:
    a, b = build("resnet18", "layer3", seed=7), build("resnet18", "layer3", seed=7)
    c = build("resnet18", "layer3", seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["body.0.weight"], sc["body.0.weight"])
    x = images()
    with torch.inference_mode():
        assert torch.equal(a.eval()(x), b.eval()(x))
        assert not torch.equal(a(x), c.eval()(x))


@pytest.mark.parametrize("layer", ["layer3", "layer4"])
def test_state_dict_from_torchvision_resnet18(layer: str) -> None:
    torch.manual_seed(123)
    other = tvm.resnet18(weights=None)
    randomise_batchnorm(other, seed=5)
    state = other.state_dict()
    assert any(k.startswith("fc.") for k in state), "the donor state dict should carry its classifier"
    net = build("resnet18", layer, seed=0, state=state).eval()   # a different seed: weights must come from `state`
    other.eval()
    x = images()
    with torch.inference_mode():
        want = reference_trunk(other, layer, x)
        got = net(x)
        fused = net.for_inference()(x)
    assert torch.allclose(got, want, rtol=0, atol=1e-6 * want.abs().max().item())
    assert_close_to_scale(fused, want)


def test_state_dict_with_other_classifier_head_loads() -> None:
    """A donor fine-tuned on another label set (fc 512 -> 10) still gives its trunk: fc.* is ignored."""
    torch.manual_seed(9)
    other = tvm.resnet18(weights=None, num_classes=10).eval()
    net = build("resnet18", "layer2", state=other.state_dict()).eval()
    x = images(1)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), reference_trunk(other, "layer2", x))


def test_resnet50_weights_into_resnet18_raise() -> None:
    torch.manual_seed(0)
    state = tvm.resnet50(weights=None).state_dict()
    with pytest.raises(BackboneError, match=r"weights do not fit resnet18") as e:
        ResNetTrunk("resnet18", "layer3", state)
    assert "size mismatch" in str(e.value)


def test_resnet18_weights_into_resnet50_raise() -> None:
    torch.manual_seed(0)
    state = tvm.resnet18(weights=None).state_dict()
    with pytest.raises(BackboneError, match=r"weights do not fit resnet50"):
        ResNetTrunk("resnet50", "layer3", state)


def test_incomplete_state_dict_raises() -> None:
    torch.manual_seed(0)
    state = {k: v for k, v in tvm.resnet18(weights=None).state_dict().items() if not k.startswith("layer1.")}
    with pytest.raises(BackboneError, match=r"missing .*layer1\."):
        ResNetTrunk("resnet18", "layer3", state)


@pytest.mark.parametrize("name, layer", [
    ("resnet20", "layer3"), ("vgg16", "layer3"), ("", "layer3"),
    ("resnet18", "layer1"), ("resnet18", "layer5"), ("resnet18", "fc"),
])
def test_unknown_name_or_layer_raises(name: str, layer: str) -> None:
    with pytest.raises(BackboneError, match=r"backbone must be one of"):
        ResNetTrunk(name, layer)
    assert issubclass(BackboneError, ValueError)
