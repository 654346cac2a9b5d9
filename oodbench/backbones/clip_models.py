"""Registered CLIP backbones: the paper's OpenAI CLIP ViT-B/16 and ViT-L/14, and a tiny seeded test model.

SeTAR (Li et al., NeurIPS 2024; github.com/X1AOX1A/SeTAR ``src/svd_ood/svd_ood/model_hub.py``) uses
``openai/clip-vit-base-patch16`` and ``openai/clip-vit-large-patch14``: the OpenAI weights, trained with QuickGELU.
open_clip's ``*-quickgelu`` configs are that architecture; tag ``openai`` is the same checkpoint.

``pretrained``: ``None`` = the default tag (``openai``); a tag; a weights file or model folder (open_clip or Hugging
Face format); ``"none"`` / ``"random"`` = seeded random init (option ``seed``, default 0).
"""

from __future__ import annotations

from typing import Any

from oodbench.backbones.clip import ClipBackbone
from oodbench.backbones.clip_loading import clip_from_config, load_open_clip
from oodbench.registry import register

#: A tiny CLIP with the real architecture (QuickGELU, class-token pooling, causal text tower, the bundled BPE
#: tokenizer's 49,408-token vocabulary): 32-px images, 8-px patches (4x4 grid), width 64, 2+2 layers, 2 heads.
TEST_CLIP_TINY_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@register("backbones", "clip_vit_b16")
def clip_vit_b16(pretrained: str | None = None, **options: Any) -> ClipBackbone:
    """OpenAI CLIP ViT-B/16 (open_clip ViT-B-16-quickgelu), weights tag 'openai' by default."""
    return load_open_clip("ViT-B-16-quickgelu", "openai" if pretrained is None else pretrained, name="clip_vit_b16",
                          family="clip-b16", **options)


@register("backbones", "clip_vit_l14")
def clip_vit_l14(pretrained: str | None = None, **options: Any) -> ClipBackbone:
    """OpenAI CLIP ViT-L/14 (open_clip ViT-L-14-quickgelu), weights tag 'openai' by default."""
    return load_open_clip("ViT-L-14-quickgelu", "openai" if pretrained is None else pretrained, name="clip_vit_l14",
                          family="clip-l14", **options)


@register("backbones", "test_clip_tiny")
def tiny_clip(pretrained: str | None = None, *, seed: int = 0, **options: Any) -> ClipBackbone:
    """Tiny seeded random CLIP for tests (32 px, patch 8, width 64, 2+2 layers, context 16)."""
    return clip_from_config(TEST_CLIP_TINY_CFG, pretrained, name="test_clip_tiny", seed=seed, **options)
