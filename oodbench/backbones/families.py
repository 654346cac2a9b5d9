"""Architecture families of backbones (:attr:`oodbench.backbones.base.Backbone.family`), by exact lookup.

Per-backbone tables (the SeTAR hyperparameters of the paper's Table 10) are keyed by family: ``"clip-b16"``
(OpenAI CLIP ViT-B/16), ``"clip-l14"`` (ViT-L/14 at 224 px), ``"swinv2-b"`` (Swin-V2-B, window 16, 256 px),
``"resnet50"`` and ``"digits"`` (the embedded benchmark's model). A family is found

* for an open_clip model name, in :data:`OPEN_CLIP_FAMILIES` (the name exactly, ``-quickgelu`` variants included);
* for a CLIP model built from a folder or config (``local-dir:`` in open_clip or Hugging Face layout), by comparing its
  dimensions (:func:`clip_signature`: widths, depths, heads, MLP widths, patch and image size, context length,
  vocabulary, embedding size) with those of the open_clip configs named in :data:`OPEN_CLIP_FAMILIES`;
* for a timm model name, in :data:`TIMM_FAMILIES` (the architecture name exactly, without its pretrained tag),
  and only when no keyword argument changes the architecture.

Anything else has no family (None); names are never matched by substring.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from torch import nn

#: open_clip model name -> family. Activation (QuickGELU or GELU) does not change the family.
OPEN_CLIP_FAMILIES: dict[str, str] = {
    "ViT-B-16": "clip-b16",
    "ViT-B-16-quickgelu": "clip-b16",
    "ViT-L-14": "clip-l14",
    "ViT-L-14-quickgelu": "clip-l14",
}

#: timm architecture name -> family.
TIMM_FAMILIES: dict[str, str] = {
    "swinv2_base_window16_256": "swinv2-b",
    "resnet50": "resnet50",
}

#: timm keyword arguments that leave the architecture of the blocks as it is (the head size may change).
_TIMM_NEUTRAL_KWARGS = frozenset({"num_classes", "drop_rate", "drop_path_rate", "proj_drop_rate", "attn_drop_rate"})


def open_clip_family(model_name: str) -> str | None:
    """Family of an open_clip model name (``"ViT-B-16-quickgelu"`` -> ``"clip-b16"``), None when not listed."""
    return OPEN_CLIP_FAMILIES.get(model_name)


def timm_family(arch: str, model_kwargs: dict[str, Any] | None = None, declared: str | None = None) -> str | None:
    """Family of a timm architecture name (tag stripped): ``declared`` (a registered backbone's) or the lookup in
    :data:`TIMM_FAMILIES`; None when neither gives one, or when ``model_kwargs`` change the architecture."""
    if set(model_kwargs or {}) - _TIMM_NEUTRAL_KWARGS:
        return None
    return declared or TIMM_FAMILIES.get(arch.partition(".")[0])


def clip_family(model: nn.Module) -> str | None:
    """Family of an open_clip ``CLIP`` by its dimensions (see :func:`clip_signature`), None when none fits."""
    try:
        sig = clip_signature(model)
    except (AttributeError, IndexError, TypeError):
        return None
    return _reference_signatures().get(sig)


def clip_signature(model: nn.Module) -> tuple[int, ...]:
    """``(embed_dim, image_size, patch_size, vision width, depth, heads, MLP width, context length, vocabulary,
    text width, depth, heads, MLP width)`` of an open_clip ``CLIP`` (or ``CustomTextCLIP`` with ``model.text``)."""
    v = model.visual
    vb = v.transformer.resblocks
    text = model.text if isinstance(getattr(model, "text", None), nn.Module) else model
    tb = text.transformer.resblocks
    return (
        int(v.output_dim), _side(v.image_size), _side(v.patch_size),
        int(v.conv1.out_channels), len(vb), int(vb[0].attn.num_heads), int(vb[0].mlp.c_fc.out_features),
        int(text.positional_embedding.shape[0]), int(text.token_embedding.num_embeddings),
        int(text.token_embedding.embedding_dim), len(tb), int(tb[0].attn.num_heads), int(tb[0].mlp.c_fc.out_features),
    )


def config_signature(cfg: dict[str, Any]) -> tuple[int, ...]:
    """:func:`clip_signature` of the model that ``open_clip.CLIP(**cfg)`` would build, without building it."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    v, t = CLIPVisionCfg(**cfg["vision_cfg"]), CLIPTextCfg(**cfg["text_cfg"])
    return (
        int(cfg["embed_dim"]), _side(v.image_size), _side(v.patch_size),
        int(v.width), int(v.layers), int(v.width // v.head_width), int(v.width * v.mlp_ratio),
        int(t.context_length), int(t.vocab_size), int(t.width), int(t.layers), int(t.heads), int(t.width * t.mlp_ratio),
    )


@lru_cache(maxsize=1)
def _reference_signatures() -> dict[tuple[int, ...], str]:
    import open_clip

    out: dict[tuple[int, ...], str] = {}
    for name, family in OPEN_CLIP_FAMILIES.items():
        cfg = open_clip.get_model_config(name)
        if cfg is not None:
            out[config_signature(cfg)] = family
    return out


def _side(value: Any) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise TypeError("non-square")
        value = value[0]
    return int(value)
