"""Swin Transformer V2 (timm ``SwinTransformerV2``) adapter: blocks, per-position logits, target weights.

Per-position logits follow SeTAR (Li et al., NeurIPS 2024; github.com/X1AOX1A/SeTAR
``src/svd_ood/svd_ood/models/swinv2/modeling_swinv2.py``, the ``logits_local`` of ``Swinv2ForImageClassification``):
the **last** block's value path, per token,

    v = attn.proj(x @ W_v.T + v_bias);  x1 = x + norm1(v);  x2 = x1 + norm2(mlp(x1))

(Swin-V2 res-post-norm; window partition, cyclic shift, padding and their inverses only move tokens, so for a per-token
operation they are identities), then the final ``norm`` and the classifier ``head.fc`` at every position
-> ``[B, H*W, C]`` (8 x 8 = 64 positions for swinv2_base_window16_256 at 256 px).

Blocks are flattened across stages (depths 2, 2, 18, 2 -> 24 blocks for Swin-V2-B). The state entering block ``l`` is
NHWC ``[B, H, W, C]`` after the patch embedding and, when ``l`` opens a stage, after that stage's patch merging.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.backbones.base import TargetWeight
from oodbench.backbones.classifier_arch import ClassifierArch, timm_block_target


class SwinV2Arch(ClassifierArch):
    arch_name = "swinv2"
    has_local = True
    local_from_input = True
    weight_types = ("W_q", "W_k", "W_v", "W_o", "W_up", "W_down")

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self._blocks: list[nn.Module] = []
        self._stage_start: dict[int, nn.Module] = {}  # block index -> downsample in front of it
        for stage in model.layers:
            self._stage_start[len(self._blocks)] = stage.downsample
            self._blocks.extend(stage.blocks)

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        from timm.models.swin_transformer_v2 import SwinTransformerV2

        return isinstance(model, SwinTransformerV2)

    def blocks(self) -> list[nn.Module]:
        return self._blocks

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.patch_embed(images)

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for i in range(start, stop):
            if i != start:
                x = self.enter(x, i)
            x = self._blocks[i](x)
        return x

    def enter(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Apply the downsampling in front of block ``layer`` (the state *entering* it includes it)."""
        return self._stage_start[layer](x) if layer in self._stage_start else x

    def finish(self, x_out: torch.Tensor) -> torch.Tensor:
        return self.model.norm(x_out)

    def value_state(self, x_in: torch.Tensor) -> torch.Tensor:
        return swin_value_path(self._blocks[-1], x_in)

    def local_logits(self, x_local: torch.Tensor) -> torch.Tensor:
        x = self.model.norm(x_local)
        return self.model.head.fc(x.reshape(x.shape[0], -1, x.shape[-1]))

    def target(self, weight_type: str, layer: int, block: nn.Module, names: dict[int, str]) -> TargetWeight:
        return timm_block_target(weight_type, layer, block, names)


def swin_value_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Value path of one ``SwinTransformerV2Block`` on NHWC ``x`` ``[B, H, W, C]`` -> ``[B, H, W, C]``."""
    attn = block.attn
    c = x.shape[-1]
    v = F.linear(x, attn.qkv.weight[2 * c :], attn.v_bias)
    if attn.qkv.bias is not None:  # qkv_bias_separate layouts keep a bias on the Linear itself
        v = v + attn.qkv.bias[2 * c :]
    x = x + block.norm1(attn.proj(v))
    return x + block.norm2(block.mlp(x))
