"""Hugging Face ``Swinv2ForImageClassification`` -> timm ``SwinTransformerV2``: state-dict keys and shapes, config check.

SeTAR's Swin model is ``microsoft/swinv2-base-patch4-window16-256`` (transformers), which is timm's
``swinv2_base_window16_256`` (:data:`HF_TO_TIMM` lists the naming of both hubs); its fine-tuned checkpoints
(SeTAR+FT, LoRA) are transformers state dicts. The two implementations compute the same network (res-post-norm
blocks, cosine attention with a learned ``logit_scale``, the continuous relative-position MLP); they differ in names,
in the packing of q/k/v and in where a stage's patch merging lives:

==========================================================  =========================================================
transformers (``swinv2.`` prefix dropped)                   timm
==========================================================  =========================================================
``embeddings.patch_embeddings.projection.*``                ``patch_embed.proj.*``
``embeddings.norm.*``                                       ``patch_embed.norm.*``
``encoder.layers.{s}.blocks.{b}.attention.self.``           ``layers.{s}.blocks.{b}.attn.``
  ``query.weight`` / ``key.weight`` / ``value.weight``        ``qkv.weight`` (rows q, k, v stacked)
  ``query.bias`` / ``value.bias`` (``key`` has none)          ``q_bias`` / ``v_bias`` (``k_bias`` a zero buffer)
  ``logit_scale`` ``[heads, 1, 1]``                           ``logit_scale``
  ``continuous_position_bias_mlp.{0,2}.*``                    ``cpb_mlp.{0,2}.*``
``…blocks.{b}.attention.output.dense.*``                    ``…blocks.{b}.attn.proj.*``
``…blocks.{b}.layernorm_before.*`` (after attention)        ``…blocks.{b}.norm1.*`` (after attention)
``…blocks.{b}.intermediate.dense.*`` / ``output.dense.*``   ``…blocks.{b}.mlp.fc1.*`` / ``mlp.fc2.*``
``…blocks.{b}.layernorm_after.*`` (after the MLP)           ``…blocks.{b}.norm2.*`` (after the MLP)
``encoder.layers.{s}.downsample.*`` (end of stage ``s``)    ``layers.{s+1}.downsample.*`` (start of stage ``s+1``)
``layernorm.*``                                             ``norm.*``
``classifier.*``                                            ``head.fc.*``
==========================================================  =========================================================

Both patch mergings concatenate the 2x2 neighbours in the same order (``[0::2, 0::2]``, ``[1::2, 0::2]``,
``[0::2, 1::2]``, ``[1::2, 1::2]``), so ``reduction.weight`` maps unchanged. The relative-position buffers
(``relative_coords_table``, ``relative_position_index``, stored by older transformers versions) are recomputed by
timm and dropped. transformers adds a shifted window's ``-100`` mask twice (``-200``); after the softmax both are
below float32's smallest normal number, so the outputs agree to rounding.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

#: transformers hub names -> timm architectures (the same networks under each hub's naming).
HF_TO_TIMM: dict[str, str] = {
    "microsoft/swinv2-tiny-patch4-window8-256": "swinv2_tiny_window8_256",
    "microsoft/swinv2-tiny-patch4-window16-256": "swinv2_tiny_window16_256",
    "microsoft/swinv2-small-patch4-window8-256": "swinv2_small_window8_256",
    "microsoft/swinv2-small-patch4-window16-256": "swinv2_small_window16_256",
    "microsoft/swinv2-base-patch4-window8-256": "swinv2_base_window8_256",
    "microsoft/swinv2-base-patch4-window16-256": "swinv2_base_window16_256",
    "microsoft/swinv2-base-patch4-window12-192-22k": "swinv2_base_window12_192",
    "microsoft/swinv2-base-patch4-window12to16-192to256-22kto1k-ft": "swinv2_base_window12to16_192to256",
    "microsoft/swinv2-base-patch4-window12to24-192to384-22kto1k-ft": "swinv2_base_window12to24_192to384",
    "microsoft/swinv2-large-patch4-window12-192-22k": "swinv2_large_window12_192",
    "microsoft/swinv2-large-patch4-window12to16-192to256-22kto1k-ft": "swinv2_large_window12to16_192to256",
    "microsoft/swinv2-large-patch4-window12to24-192to384-22kto1k-ft": "swinv2_large_window12to24_192to384",
}

_DROPPED = ("relative_coords_table", "relative_position_index", "embeddings.mask_token")
_BLOCK = re.compile(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)")
_DOWNSAMPLE = re.compile(r"encoder\.layers\.(\d+)\.downsample\.(.+)")
_BLOCK_PARTS = {
    "attention.self.logit_scale": "attn.logit_scale",
    "attention.self.continuous_position_bias_mlp.0.weight": "attn.cpb_mlp.0.weight",
    "attention.self.continuous_position_bias_mlp.0.bias": "attn.cpb_mlp.0.bias",
    "attention.self.continuous_position_bias_mlp.2.weight": "attn.cpb_mlp.2.weight",
    "attention.self.query.bias": "attn.q_bias",
    "attention.self.value.bias": "attn.v_bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "intermediate.dense.weight": "mlp.fc1.weight",
    "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight",
    "output.dense.bias": "mlp.fc2.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
}
_QKV = ("attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight")
_SINGLE = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "embeddings.norm.weight": "patch_embed.norm.weight",
    "embeddings.norm.bias": "patch_embed.norm.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "classifier.weight": "head.fc.weight",
    "classifier.bias": "head.fc.bias",
}


class ConversionError(ValueError):
    """A state dict or config that does not fit the mapping."""


def is_hf_swinv2_state_dict(state: dict[str, Any]) -> bool:
    """True when the keys are transformers ``Swinv2ForImageClassification`` / ``Swinv2Model`` keys."""
    return any(".attention.self.continuous_position_bias_mlp." in k for k in state) and any(
        k.startswith(("swinv2.embeddings.", "embeddings.patch_embeddings.")) for k in state
    )


def hf_swinv2_to_timm_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers Swin-V2 state dict -> timm ``SwinTransformerV2`` state dict (see the module docstring).

    Raises:
        ConversionError: a key the mapping does not know, an incomplete q/k/v triple, or a ``key`` bias.
    """
    sd = {(k[len("swinv2.") :] if k.startswith("swinv2.") else k): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key.endswith(_DROPPED):
            continue
        if key in _SINGLE:
            out[_SINGLE[key]] = value
            continue
        m = _BLOCK.fullmatch(key)
        if m:
            prefix, part = f"layers.{m.group(1)}.blocks.{m.group(2)}", m.group(3)
            if part in _QKV:
                qkv.setdefault(prefix, {})[part] = value
            elif part in _BLOCK_PARTS:
                out[f"{prefix}.{_BLOCK_PARTS[part]}"] = value
            elif part == "attention.self.key.bias":
                raise ConversionError(f"'{key}': a bias on the key projection has no place in Swin-V2")
            else:
                raise ConversionError(f"unexpected key '{key}'")
            continue
        m = _DOWNSAMPLE.fullmatch(key)
        if m:
            out[f"layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}"] = value
            continue
        if key == "embeddings.position_embeddings":
            raise ConversionError("absolute position embeddings (use_absolute_embeddings) are not part of timm's Swin-V2")
        raise ConversionError(f"unexpected key '{key}'")
    for prefix, parts in qkv.items():
        missing = [p.split(".")[-2] for p in _QKV if p not in parts]
        if missing:
            raise ConversionError(f"{prefix}: no {'/'.join(missing)} weight for the packed q/k/v")
        out[f"{prefix}.attn.qkv.weight"] = torch.cat([parts[p] for p in _QKV])
    return out


def check_hf_swinv2_config(config: dict[str, Any], model: nn.Module) -> None:
    """Raise :class:`ConversionError` unless a transformers ``config.json`` describes the architecture of ``model``
    (a timm ``SwinTransformerV2``): image and patch size, widths, depths, heads, effective windows, pretraining
    windows and MLP ratio. State-dict shapes alone miss the windows, which change the network but no shape."""
    if config.get("model_type", "swinv2") != "swinv2":
        raise ConversionError(f"model_type is '{config.get('model_type')}', expected 'swinv2'")
    if config.get("use_absolute_embeddings"):
        raise ConversionError("absolute position embeddings (use_absolute_embeddings) are not part of timm's Swin-V2")
    hf = _hf_signature(config)
    ours = _timm_signature(model)
    if hf != ours:
        diff = [f"{k} {hf[k]} (config) vs {ours[k]} (model)" for k in hf if hf[k] != ours[k]]
        raise ConversionError("the config describes another Swin-V2: " + "; ".join(diff))


def _hf_signature(c: dict[str, Any]) -> dict[str, Any]:
    image, patch = _pair(c.get("image_size", 224)), _pair(c.get("patch_size", 4))
    depths = tuple(int(d) for d in c.get("depths", (2, 2, 6, 2)))
    embed = int(c.get("embed_dim", 96))
    window = int(c.get("window_size", 7))
    pretrained = tuple(int(w) for w in (c.get("pretrained_window_sizes") or (0,) * len(depths)))
    grid = (image[0] // patch[0], image[1] // patch[1])
    windows = tuple(min(grid[0] // 2 ** i, window) for i in range(len(depths)))
    return {
        "image_size": image, "patch_size": patch, "depths": depths,
        "heads": tuple(int(h) for h in c.get("num_heads", (3, 6, 12, 24))),
        "widths": tuple(embed * 2 ** i for i in range(len(depths))),
        "windows": windows, "pretrained_windows": pretrained,
        "mlp_ratio": float(c.get("mlp_ratio", 4.0)),
    }


def _timm_signature(model: nn.Module) -> dict[str, Any]:
    stages = list(model.layers)
    first = [s.blocks[0] for s in stages]
    return {
        "image_size": tuple(model.patch_embed.img_size), "patch_size": tuple(model.patch_embed.patch_size),
        "depths": tuple(len(s.blocks) for s in stages),
        "heads": tuple(int(b.attn.num_heads) for b in first),
        "widths": tuple(int(b.attn.dim) for b in first),
        "windows": tuple(int(b.window_size[0]) for b in first),
        "pretrained_windows": tuple(int(b.attn.pretrained_window_size[0]) for b in first),
        "mlp_ratio": float(first[0].mlp.fc1.out_features / first[0].attn.dim),
    }


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))
