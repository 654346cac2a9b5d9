"""Hugging Face ``CLIPModel`` <-> open_clip ``CLIP``: configuration and state-dict key mapping, both ways.

The architectures are identical (the ``openai/clip-vit-base-patch16`` checkpoint is a conversion of the same OpenAI
``ViT-B-16.pt`` that open_clip loads as tag ``openai``); only names and layouts differ:

=================================================  ===========================================================
open_clip (``CLIP``)                               transformers (``CLIPModel``)
=================================================  ===========================================================
``{tower}.{i}.attn.in_proj_{weight,bias}``          ``{layers}.{i}.self_attn.{q,k,v}_proj.*`` (stacked q, k, v)
``{tower}.{i}.attn.out_proj.*``                    ``{layers}.{i}.self_attn.out_proj.*``
``{tower}.{i}.ln_1.* / ln_2.*``                    ``{layers}.{i}.layer_norm1.* / layer_norm2.*``
``{tower}.{i}.mlp.c_fc.* / c_proj.*``              ``{layers}.{i}.mlp.fc1.* / fc2.*``
``visual.class_embedding``                         ``vision_model.embeddings.class_embedding``
``visual.conv1.weight``                            ``vision_model.embeddings.patch_embedding.weight``
``visual.positional_embedding``                    ``vision_model.embeddings.position_embedding.weight``
``visual.ln_pre.* / visual.ln_post.*``             ``vision_model.pre_layrnorm.* / post_layernorm.*``
``visual.proj`` ``[in, out]``                      ``visual_projection.weight`` ``[out, in]`` (transposed)
``token_embedding.weight``                         ``text_model.embeddings.token_embedding.weight``
``positional_embedding``                           ``text_model.embeddings.position_embedding.weight``
``ln_final.*``                                     ``text_model.final_layer_norm.*``
``text_projection`` ``[in, out]``                  ``text_projection.weight`` ``[out, in]`` (transposed)
``logit_scale``                                    ``logit_scale``
=================================================  ===========================================================

with ``{tower}`` = ``visual.transformer.resblocks`` / ``transformer.resblocks`` and ``{layers}`` =
``vision_model.encoder.layers`` / ``text_model.encoder.layers``. Text pooling: open_clip takes the arg-max token id
(the end-of-text token 49407 is the largest id of its tokenizer); HF takes the first ``eos_token_id`` (49407), or the
arg-max for legacy configs with ``eos_token_id == 2`` — the same position for open_clip's tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch

_HF_TEXT_DEFAULTS = {
    "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
    "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}
_HF_VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3,
}
_ACTS = {"quick_gelu": True, "gelu": False}
_BLOCK_PARTS = (
    ("attn.out_proj", "self_attn.out_proj"),
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
)
_TOWERS = (("visual.transformer.resblocks", "vision_model.encoder.layers"), ("transformer.resblocks", "text_model.encoder.layers"))
_SINGLE = (
    ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
    ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
    ("visual.ln_post.weight", "vision_model.post_layernorm.weight"),
    ("visual.ln_post.bias", "vision_model.post_layernorm.bias"),
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
    ("ln_final.weight", "text_model.final_layer_norm.weight"),
    ("ln_final.bias", "text_model.final_layer_norm.bias"),
    ("logit_scale", "logit_scale"),
)
_TRANSPOSED = (("visual.proj", "visual_projection.weight"), ("text_projection", "text_projection.weight"))


class ConversionError(ValueError):
    """A state dict or config that does not fit the mapping (missing key, unsupported option)."""


def is_hf_clip_state_dict(state: dict[str, Any]) -> bool:
    """True when the keys are transformers ``CLIPModel`` keys."""
    return any(k.startswith("vision_model.") for k in state) and any(k.startswith("text_model.") for k in state)


def hf_to_open_clip_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``CLIPModel`` state dict -> open_clip ``CLIP`` state dict (``position_ids`` buffers dropped)."""
    sd = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ConversionError(f"missing key '{key}'")
        used.add(key)
        return sd[key]

    for oc_prefix, hf_prefix in _TOWERS:
        i = 0
        while f"{hf_prefix}.{i}.layer_norm1.weight" in sd:
            s, d = f"{hf_prefix}.{i}", f"{oc_prefix}.{i}"
            for p in ("weight", "bias"):
                out[f"{d}.attn.in_proj_{p}"] = torch.cat([take(f"{s}.self_attn.{q}_proj.{p}") for q in "qkv"])
                for oc_part, hf_part in _BLOCK_PARTS:
                    out[f"{d}.{oc_part}.{p}"] = take(f"{s}.{hf_part}.{p}")
            i += 1
        if i == 0:
            raise ConversionError(f"no '{hf_prefix}.*' blocks found")
    for oc_key, hf_key in _SINGLE:
        out[oc_key] = take(hf_key)
    for oc_key, hf_key in _TRANSPOSED:
        out[oc_key] = take(hf_key).t().contiguous()
    left = sorted(set(sd) - used)
    if left:
        raise ConversionError(f"unexpected keys for a CLIPModel: {', '.join(left[:3])}{' ...' if len(left) > 3 else ''}")
    return out


def open_clip_to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip ``CLIP`` state dict -> transformers ``CLIPModel`` state dict (the inverse of the above)."""
    out: dict[str, torch.Tensor] = {}
    for oc_prefix, hf_prefix in _TOWERS:
        i = 0
        while f"{oc_prefix}.{i}.ln_1.weight" in state:
            s, d = f"{oc_prefix}.{i}", f"{hf_prefix}.{i}"
            for p in ("weight", "bias"):
                for q, part in zip("qkv", state[f"{s}.attn.in_proj_{p}"].chunk(3, dim=0)):
                    out[f"{d}.self_attn.{q}_proj.{p}"] = part.contiguous()
                for oc_part, hf_part in _BLOCK_PARTS:
                    out[f"{d}.{hf_part}.{p}"] = state[f"{s}.{oc_part}.{p}"]
            i += 1
    for oc_key, hf_key in _SINGLE:
        out[hf_key] = state[oc_key]
    for oc_key, hf_key in _TRANSPOSED:
        out[hf_key] = state[oc_key].t().contiguous()
    return out


def open_clip_cfg_from_hf_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a transformers ``CLIPModel`` -> keyword arguments of open_clip ``CLIP(**cfg)``."""
    if config.get("model_type", "clip") != "clip":
        raise ConversionError(f"model_type is '{config.get('model_type')}', expected 'clip'")
    text = {**_HF_TEXT_DEFAULTS, **(config.get("text_config") or {})}
    vision = {**_HF_VISION_DEFAULTS, **(config.get("vision_config") or {})}
    acts = {text["hidden_act"], vision["hidden_act"]}
    if len(acts) != 1 or not acts <= set(_ACTS):
        raise ConversionError(f"unsupported activation(s) {sorted(acts)}; expected quick_gelu or gelu in both towers")
    if vision.get("num_channels", 3) != 3:
        raise ConversionError("only 3-channel image towers are supported")
    image_size, patch_size = _square(vision["image_size"], "image_size"), _square(vision["patch_size"], "patch_size")
    vw, tw = int(vision["hidden_size"]), int(text["hidden_size"])
    vision_cfg: dict[str, Any] = {
        "image_size": image_size,
        "patch_size": patch_size,
        "width": vw,
        "layers": int(vision["num_hidden_layers"]),
        "head_width": vw // int(vision["num_attention_heads"]),
        "mlp_ratio": int(vision["intermediate_size"]) / vw,
    }
    text_cfg: dict[str, Any] = {
        "context_length": int(text["max_position_embeddings"]),
        "vocab_size": int(text["vocab_size"]),
        "width": tw,
        "heads": int(text["num_attention_heads"]),
        "layers": int(text["num_hidden_layers"]),
        "mlp_ratio": int(text["intermediate_size"]) / tw,
    }
    for cfg, eps in ((vision_cfg, vision["layer_norm_eps"]), (text_cfg, text["layer_norm_eps"])):
        if float(eps) != 1e-5:
            cfg["norm_kwargs"] = {"eps": float(eps)}
    projection_dim = config.get("projection_dim", 512)
    return {"embed_dim": int(projection_dim), "quick_gelu": _ACTS[acts.pop()], "vision_cfg": vision_cfg, "text_cfg": text_cfg}


def hf_config_from_open_clip(model: torch.nn.Module) -> dict[str, Any]:
    """A transformers ``CLIPConfig`` dictionary (``CLIPConfig(**d)`` or ``config.json``) for an open_clip ``CLIP``."""
    from open_clip.transformer import QuickGELU

    v = model.visual
    vb, tb = v.transformer.resblocks[0], model.transformer.resblocks[0]
    act = "quick_gelu" if isinstance(vb.mlp.gelu, QuickGELU) else "gelu"
    image_size, patch_size = tuple(v.image_size), tuple(v.patch_size)
    if image_size[0] != image_size[1] or patch_size[0] != patch_size[1]:
        raise ConversionError("non-square image towers cannot be written as a CLIPModel config")
    return {
        "model_type": "clip",
        "projection_dim": int(v.proj.shape[1]),
        "logit_scale_init_value": float(model.logit_scale.detach().reshape(-1)[0]),
        "vision_config": {
            "hidden_size": int(v.conv1.out_channels),
            "intermediate_size": int(vb.mlp.c_fc.out_features),
            "num_hidden_layers": len(v.transformer.resblocks),
            "num_attention_heads": int(vb.attn.num_heads),
            "image_size": int(image_size[0]),
            "patch_size": int(patch_size[0]),
            "hidden_act": act,
            "layer_norm_eps": float(vb.ln_1.eps),
            "projection_dim": int(v.proj.shape[1]),
        },
        "text_config": {
            "hidden_size": int(model.token_embedding.embedding_dim),
            "intermediate_size": int(tb.mlp.c_fc.out_features),
            "num_hidden_layers": len(model.transformer.resblocks),
            "num_attention_heads": int(tb.attn.num_heads),
            "vocab_size": int(model.vocab_size),
            "max_position_embeddings": int(model.context_length),
            "hidden_act": act,
            "layer_norm_eps": float(tb.ln_1.eps),
            "eos_token_id": 49407,
            "bos_token_id": 49406,
            "projection_dim": int(v.proj.shape[1]),
        },
    }


def _square(value: Any, what: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ConversionError(f"non-square {what} {value} is not supported")
        value = value[0]
    return int(value)
