"""Supervised pre-training of the ResNet trunk on segment attributes (the `backbone` stage's model).

The trunk's feature map is soft-mask pooled over each ground-truth segment exactly as the
`features` stage pools it (models.pooling), and one linear head per attribute (e.g. category,
colour, size) classifies the pooled feature. Linear heads keep the attributes linearly readable
from the node features that the downstream models receive.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from models import pooling
from models.backbone import IMAGENET_MEAN, IMAGENET_STD, LAYERS, RESNETS, BackboneError

STEM = ("conv1", "bn1", "relu", "maxpool")
IGNORE = -1  # target of a segment an attribute does not apply to (e.g. the colour of stuff)


@dataclass
class AttributeBatch:
    """images B x 3 x H x W float in [0, 255]; coverage B x S x (h*w) pixel counts per feature cell;
    targets: attribute -> B x S class indices (IGNORE where unknown or not applicable)."""

    images: Tensor
    coverage: Tensor
    targets: dict[str, Tensor]

    def to(self, device: torch.device) -> AttributeBatch:
        return AttributeBatch(self.images.to(device), self.coverage.to(device),
                              {k: v.to(device) for k, v in self.targets.items()})


class AttributeNet(nn.Module):
    """A torchvision ResNet run up to `layer`, mask pooling, and a linear head per attribute."""

    def __init__(self, arch: str, layer: str, classes: dict[str, int]) -> None:
        super().__init__()
        if arch not in RESNETS or layer not in LAYERS:
            raise BackboneError(f"backbone must be one of {RESNETS} and layer one of {LAYERS}, got {arch}/{layer}")
        self.resnet = getattr(tvm, arch)(weights=None)  # the whole net: its state dict is the stage's output
        self.trunk = [*STEM, *("layer1", "layer2", "layer3", "layer4")[: LAYERS.index(layer) + 2]]
        last = getattr(self.resnet, self.trunk[-1])[-1]
        channels = (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels
        self.heads = nn.ModuleDict({name: nn.Linear(channels, n) for name, n in classes.items()})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def parameter_groups(self, train_from: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(trained, fixed): the heads and the trunk from `train_from` on are trained; the trunk before it,
        the layers after it and the ImageNet classifier (which never run) keep their seeded init."""
        if train_from not in self.trunk or train_from in STEM[1:]:
            raise BackboneError(f"train_from must be conv1 or a layer up to {self.trunk[-1]}, got {train_from}")
        trained = [p for name in self.trunk[self.trunk.index(train_from):]
                   for p in getattr(self.resnet, name).parameters()] + list(self.heads.parameters())
        ids = {id(p) for p in trained}
        return trained, [p for p in self.parameters() if id(p) not in ids]

    def feature_map(self, images: Tensor) -> Tensor:
        x = (images - self.mean) / self.std
        for name in self.trunk:
            x = getattr(self.resnet, name)(x)
        return x

    def forward(self, batch: AttributeBatch) -> dict[str, Tensor]:
        nodes = pooling.pool(self.feature_map(batch.images), batch.coverage).flatten(0, 1)  # (B*S) x C
        out: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            target = batch.targets[name].flatten()
            keep = target != IGNORE
            logits = head(nodes[keep])
            # an attribute absent from the whole batch adds a zero that still touches the graph
            out[name] = F.cross_entropy(logits, target[keep]) if keep.any() else logits.sum() * 0.0
            out[f"acc_{name}"] = (logits.argmax(1) == target[keep]).float().mean() if keep.any() \
                else torch.zeros((), device=nodes.device)
        out["loss"] = sum(out[name] for name in self.heads)
        return out

    @torch.inference_mode()
    def predict(self, batch: AttributeBatch) -> dict[str, Tensor]:
        """Predicted class per segment and attribute, B x S."""
        nodes = pooling.pool(self.feature_map(batch.images), batch.coverage)
        return {name: head(nodes).argmax(-1) for name, head in self.heads.items()}
