"""timm Vision Transformer (``VisionTransformer``) adapter for the classifier backbone.

Per-position logits for a classifier ViT are this project's choice (SeTAR has none for ViT classifiers): the analogue
of the Swin-V2 construction (:mod:`oodbench.backbones.swin`, after SeTAR's ``modeling_swinv2.py``) and of the CLIP
value path (GL-MCM): the **last** block's value path per token,

    v = proj(norm_attn(x_n @ W_v.T + b_v)) with x_n = norm1(x);  x1 = x + ls1(v);  x2 = x1 + ls2(mlp(norm2(x1)))

(``norm_attn`` and the gate are the attention's optional per-token output norm and gate), then the final ``norm``,
the prefix (class / register) tokens dropped, ``fc_norm`` and the ``head`` at every patch -> ``[B, P, C]``.

States are NLC ``[B, T, C]`` tokens after patch embedding, position embedding and ``norm_pre``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.backbones.base import TargetWeight
from oodbench.backbones.classifier_arch import ClassifierArch, timm_block_target


class ViTArch(ClassifierArch):
    arch_name = "vit"
    has_local = True
    local_from_input = True
    weight_types = ("W_q", "W_k", "W_v", "W_o", "W_up", "W_down")

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        from timm.layers import Attention
        from timm.models.vision_transformer import Block, VisionTransformer

        return (
            isinstance(model, VisionTransformer)
            and model.attn_pool is None
            and all(type(b) is Block and isinstance(b.attn, Attention) for b in model.blocks)
            and isinstance(model.head, nn.Linear)
        )

    def blocks(self) -> list[nn.Module]:
        return list(self.model.blocks)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(images))))

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for blk in self.model.blocks[start:stop]:
            x = blk(x)
        return x

    def finish(self, x_out: torch.Tensor) -> torch.Tensor:
        return self.model.norm(x_out)

    def value_state(self, x_in: torch.Tensor) -> torch.Tensor:
        return vit_value_path(self.model.blocks[-1], x_in)

    def local_logits(self, x_local: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.norm(x_local)[:, m.num_prefix_tokens :]
        return m.head(m.fc_norm(x))

    def target(self, weight_type: str, layer: int, block: nn.Module, names: dict[int, str]) -> TargetWeight:
        return timm_block_target(weight_type, layer, block, names)


def vit_value_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Value path of one timm ViT ``Block`` on tokens ``[B, T, C]`` -> ``[B, T, C]`` (no token mixing)."""
    attn = block.attn
    xn = block.norm1(x)
    d = attn.qkv.weight.shape[0] // 3
    b = attn.qkv.bias[2 * d :] if attn.qkv.bias is not None else None
    v = F.linear(xn, attn.qkv.weight[2 * d :], b)
    v = attn.norm(v) if getattr(attn, "norm", None) is not None else v
    if getattr(attn, "gate", None) is not None:
        v = v * attn.gate(xn).sigmoid()
    x = x + block.ls1(attn.proj(v))
    return x + block.ls2(block.mlp(block.norm2(x)))
