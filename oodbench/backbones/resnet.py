"""timm ResNet (bottleneck) adapter for the classifier backbone.

Not in SeTAR (spec: "no ResNet, no conv-layer SVD" in the official code); these are this project's choices, following
the suggestions of the SeTAR reference notes (§9.2):

* per-position logits: the classifier ``fc`` applied at every position of the last feature map (``layer4``
  output, 7 x 7 for 224 px) -> ``[B, H*W, C]``; average-pooling them gives the logits exactly (pooling and a linear
  layer commute);
* target weights: conv kernels viewed as ``[C_out, C_in * kh * kw]``. **W_up** is each bottleneck's expansion conv
  ``conv3`` (1x1, c -> 4c, the analogue of a transformer MLP's up-projection), **W_down** is its reduction conv
  ``conv1`` (1x1, in -> c). Other weight types do not exist here.

Blocks are the bottlenecks of ``layer1 .. layer4`` flattened (16 for ResNet-50). The state entering block 0 is the
stem output (``conv1, bn1, act1, maxpool``), NCHW; stage downsampling lives inside each stage's first bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

from oodbench.backbones.base import TargetWeight
from oodbench.backbones.classifier_arch import ClassifierArch


class ResNetArch(ClassifierArch):
    arch_name = "resnet"
    has_local = True
    local_from_input = False
    weight_types = ("W_up", "W_down")

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        from timm.models.resnet import Bottleneck, ResNet

        return (
            isinstance(model, ResNet)
            and all(isinstance(b, Bottleneck) for s in (model.layer1, model.layer2, model.layer3, model.layer4) for b in s)
            and isinstance(model.fc, nn.Linear)
        )

    def blocks(self) -> list[nn.Module]:
        m = self.model
        return [b for s in (m.layer1, m.layer2, m.layer3, m.layer4) for b in s]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.maxpool(m.act1(m.bn1(m.conv1(images))))

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for blk in self.blocks()[start:stop]:
            x = blk(x)
        return x

    def local_logits(self, x_local: torch.Tensor) -> torch.Tensor:
        return self.model.fc(x_local.flatten(2).transpose(1, 2))

    def target(self, weight_type: str, layer: int, block: nn.Module, names: dict[int, str]) -> TargetWeight:
        conv = block.conv3 if weight_type == "W_up" else block.conv1
        w = conv.weight
        return TargetWeight("vision", weight_type, layer, names[id(w)], w, kernel_shape=tuple(w.shape))
