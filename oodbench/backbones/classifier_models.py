"""Registered timm classifier backbones: Swin-V2-B (SeTAR's vision-only model), ResNet-50, and tiny seeded test models.

SeTAR (Li et al., NeurIPS 2024; github.com/X1AOX1A/SeTAR ``model_hub.py``) uses
``microsoft/swinv2-base-patch4-window16-256`` (ImageNet-1K), which is timm's ``swinv2_base_window16_256.ms_in1k``.
ResNet-50 uses the torchvision weights (``resnet50.tv_in1k``) as ASH / ReAct / DICE do (andrijazz/ash
``resnet50-19c8e357.pth``).

``pretrained``: ``None`` = the default tag; a tag; a weights file; ``"none"`` / ``"random"`` = seeded random init
(option ``seed``). Tiny test models are always built from the seed unless a weights file is given.
"""

from __future__ import annotations

from typing import Any

import torch

from oodbench.backbones.classifier import ClassifierBackbone
from oodbench.backbones.classifier_loading import load_timm
from oodbench.registry import register

#: Swin-V2-B shrunk (same classes, 2 blocks per stage so that shifted windows occur): 64 px, 10 classes.
TEST_SWIN_TINY_KWARGS: dict[str, Any] = dict(
    embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), img_size=64, window_size=4, num_classes=10
)
#: ViT-B/16 shrunk: 32 px, 8-px patches (4 x 4 grid + class token), width 64, 2 blocks, 2 heads, 10 classes.
TEST_VIT_TINY_KWARGS: dict[str, Any] = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10)
#: ResNet-50 with one bottleneck per stage, 10 classes, 64-px inputs (2 x 2 final map).
TEST_RESNET_TINY_KWARGS: dict[str, Any] = dict(layers=[1, 1, 1, 1], num_classes=10)


@register("backbones", "swinv2_b")
def swinv2_b(pretrained: str | None = None, **options: Any) -> ClassifierBackbone:
    """Swin-V2-B window 16, 256 px (timm swinv2_base_window16_256), ImageNet-1K weights tag 'ms_in1k' by default."""
    return load_timm("swinv2_base_window16_256", pretrained, name="swinv2_b", default_tag="ms_in1k", family="swinv2-b",
                     **options)


@register("backbones", "resnet50")
def resnet50(pretrained: str | None = None, **options: Any) -> ClassifierBackbone:
    """ResNet-50 (timm resnet50), torchvision ImageNet-1K weights tag 'tv_in1k' by default."""
    return load_timm("resnet50", pretrained, name="resnet50", default_tag="tv_in1k", family="resnet50", **options)


def _tiny(arch: str, name: str, kwargs: dict[str, Any], size: int, pretrained: str | None, options: dict) -> ClassifierBackbone:
    pretrained = "random" if pretrained is None else pretrained
    data = {"input_size": (3, size, size), **options.pop("data_config", {})}
    return load_timm(arch, pretrained, name=name, data_config=data, **{**kwargs, **options})


@register("backbones", "test_swin_tiny")
def tiny_swin(pretrained: str | None = None, **options: Any) -> ClassifierBackbone:
    """Tiny seeded random Swin-V2 for tests (64 px, 4 stages of 2 blocks, 10 classes)."""
    b = _tiny("swinv2_base_window16_256", "test_swin_tiny", TEST_SWIN_TINY_KWARGS, 64, pretrained, options)
    if b.pretrained is None:
        _randomise_post_norms(b.model, options.get("seed", 0))
    return b


@torch.no_grad()
def _randomise_post_norms(model: torch.nn.Module, seed: int) -> None:
    """timm initialises Swin-V2's res-post-norms to zero, which makes every block an identity map and would let
    tests pass vacuously; give them seeded weights around 1 (and biases around 0) instead."""
    g = torch.Generator().manual_seed(seed + 1)
    for stage in model.layers:
        for blk in stage.blocks:
            for norm in (blk.norm1, blk.norm2):
                norm.weight.copy_(1 + 0.2 * torch.randn(norm.weight.shape, generator=g))
                norm.bias.copy_(0.1 * torch.randn(norm.bias.shape, generator=g))


@register("backbones", "test_vit_tiny")
def tiny_vit(pretrained: str | None = None, **options: Any) -> ClassifierBackbone:
    """Tiny seeded random ViT classifier for tests (32 px, patch 8, width 64, 2 blocks, 10 classes)."""
    return _tiny("vit_base_patch16_224", "test_vit_tiny", TEST_VIT_TINY_KWARGS, 32, pretrained, options)


@register("backbones", "test_resnet_tiny")
def tiny_resnet(pretrained: str | None = None, **options: Any) -> ClassifierBackbone:
    """Tiny seeded random ResNet-50 for tests (one bottleneck per stage, 64 px, 10 classes)."""
    return _tiny("resnet50", "test_resnet_tiny", TEST_RESNET_TINY_KWARGS, 64, pretrained, options)

