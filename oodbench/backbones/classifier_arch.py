"""How a :class:`~oodbench.backbones.classifier.ClassifierBackbone` walks one timm architecture block by block.

An architecture adapter knows the block sequence (stages flattened bottom to top), how to reach the state entering
a block (stem, patch embedding, downsampling included), how to finish ``model.forward_features``, how per-position
logits are formed, and which parameters are the named weight types. Adapters: :mod:`~oodbench.backbones.swin`
(Swin-V2), :mod:`~oodbench.backbones.vit` (ViT), :mod:`~oodbench.backbones.resnet` (ResNet bottlenecks), and
:class:`GenericArch` for any other timm model (logits, penultimate and the head only).
"""

from __future__ import annotations

import torch
from torch import nn

from oodbench.backbones.base import TargetWeight
from oodbench.errors import IncompatibleError


class ClassifierArch:
    """Adapter base. States are tensors in the architecture's own layout (NHWC Swin, NLC ViT, NCHW CNN).

    Attributes:
        local_from_input: per-position logits need the state *entering* the last block (a value path), so the
            state at ``layer == num_layers`` is ``[x_out, x_value]`` concatenated along dim 1.
        weight_types: the weight types :meth:`target` supports.
    """

    arch_name = "generic"
    has_local = False
    local_from_input = False
    weight_types: tuple[str, ...] = ()

    def __init__(self, model: nn.Module):
        self.model = model

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return False

    def blocks(self) -> list[nn.Module]:
        """Blocks bottom to top (stages flattened)."""
        return []

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """State entering block 0."""
        raise self._no_layers()

    def enter(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """What runs between block ``layer - 1`` and block ``layer`` (a stage's downsampling); identity by default."""
        return x

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks ``start .. stop-1`` on the state entering ``start``, with :meth:`enter` in front of every later block."""
        raise self._no_layers()

    def finish(self, x_out: torch.Tensor) -> torch.Tensor:
        """The rest of ``model.forward_features`` after the last block (final norm)."""
        return x_out

    def value_state(self, x_in: torch.Tensor) -> torch.Tensor:
        """The last block's value path on its input (architectures with ``local_from_input``)."""
        raise NotImplementedError

    def local_logits(self, x_local: torch.Tensor) -> torch.Tensor:
        """Per-position logits ``[B, P, C]`` from the value state (or the last block's output for CNNs)."""
        raise NotImplementedError

    def target(self, weight_type: str, layer: int, block: nn.Module, names: dict[int, str]) -> TargetWeight:
        raise NotImplementedError

    def _no_layers(self) -> IncompatibleError:
        return IncompatibleError(
            f"{type(self.model).__name__} has no block-wise adapter in oodbench (supported: Swin-V2, ViT, ResNet); "
            "it provides logits and penultimate features only"
        )


class GenericArch(ClassifierArch):
    """Any timm classifier: logits, penultimate features and the head; no blocks, no per-position logits."""

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return True


def qkv_target(tower: str, weight_type: str, layer: int, qkv: nn.Linear, names: dict[int, str]) -> TargetWeight:
    """W_q / W_k / W_v as row slices of a packed ``qkv`` Linear (rows q, k, v stacked)."""
    d = qkv.weight.shape[0] // 3
    i = ("W_q", "W_k", "W_v").index(weight_type)
    return TargetWeight(tower, weight_type, layer, names[id(qkv.weight)], qkv.weight, rows=slice(i * d, (i + 1) * d))


def linear_target(tower: str, weight_type: str, layer: int, module: nn.Module, names: dict[int, str]) -> TargetWeight:
    return TargetWeight(tower, weight_type, layer, names[id(module.weight)], module.weight)


def timm_block_target(weight_type: str, layer: int, block: nn.Module, names: dict[int, str]) -> TargetWeight:
    """W_q/W_k/W_v (slices of ``attn.qkv``), W_o (``attn.proj``), W_up (``mlp.fc1``), W_down (``mlp.fc2``) of a timm
    transformer block (ViT ``Block``, ``SwinTransformerV2Block``)."""
    if weight_type in ("W_q", "W_k", "W_v"):
        return qkv_target("vision", weight_type, layer, block.attn.qkv, names)
    module = {"W_o": block.attn.proj, "W_up": block.mlp.fc1, "W_down": block.mlp.fc2}[weight_type]
    return linear_target("vision", weight_type, layer, module, names)
