"""CLIP backbones over open_clip: global and value-path local image embeddings, text embeddings, logit scale.

Local features are the GL-MCM / MaskCLIP "value path" that SeTAR uses (Li et al., "SeTAR: Out-of-Distribution
Detection with Selective Low-Rank Approximation", NeurIPS 2024; code: github.com/X1AOX1A/SeTAR,
``src/svd_ood/svd_ood/models/clip/modeling_clip.py``; the same construction as GL-MCM, Miyai et al. 2023,
github.com/AtsuyaMiyai/GL-MCM ``clip/model.py``). In the **last** vision block each token goes through the value
projection and the output projection with no token mixing::

    v = out_proj(v_proj(ln_1(x_in)));  v = x_in + v;  v = v + mlp(ln_2(v))

then ``ln_post``, drop the class token, ``@ proj``. The standard patch tokens (the last block's real output) are
*not* this. The global feature is the model's own pooled, projected output.

Layer-wise API (see :mod:`oodbench.backbones.base`): hidden states are always batch-first ``[B, T, W]`` whatever
the open_clip transformer's ``batch_first`` flag. The vision state entering block ``l`` is the output of
``ln_pre`` (``l = 0``) or of block ``l - 1``. At ``l == num_layers`` there is no block left and the local head
needs the last block's value path, so the vision state at that index is ``[x_out, x_value]`` concatenated along
the token axis (``[B, 2T, W]``). Text states are trimmed to the longest prompt of the batch (causal mask, so
tokens after the last end-of-text token never influence it).

The block arithmetic (value path, class-token-only last block, attention and MLP halves) lives in
:mod:`oodbench.backbones.clip_blocks`, the text tower (trimmed encoding, tokenizer identity, NegLabel's encoder) in
:mod:`oodbench.backbones.clip_text`; this module is the backbone class.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from oodbench.backbones.base import WEIGHT_TYPES, Backbone, TargetWeight, TowerOutput, to_numpy
from oodbench.backbones.clip_blocks import (
    attention_half,
    block_target,
    check_blocks,
    class_token_output,
    fast_arithmetic,
    last_block_attention,
    last_block_mlp,
    last_block_output,
    mlp_half,
    run_blocks,
    value_path,
)
from oodbench.backbones.clip_text import ClipTextEncoder, TextTower
from oodbench.errors import IncompatibleError, UserError

log = logging.getLogger("oodbench")

#: OpenAI CLIP's normalisation, as open_clip defines it (the default of every open_clip model config).
OPENAI_CLIP_MEAN: tuple[float, float, float] = tuple(OPENAI_DATASET_MEAN)
OPENAI_CLIP_STD: tuple[float, float, float] = tuple(OPENAI_DATASET_STD)
INTERPOLATIONS = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}
_PER_BATCH = frozenset({"image", "local"})


class ClipBackbone(Backbone):
    """An open_clip ``CLIP`` (or ``CustomTextCLIP`` with a plain text transformer) as an oodbench backbone.

    Args:
        model: the open_clip model (ViT image tower with class-token or average pooling, standard residual blocks).
        name: name recorded in results (registered name or ``open_clip:<model>``).
        pretrained: where the weights came from (tag or path), ``None`` for a seeded random init.
        tokenizer: callable ``list[str] -> LongTensor [N, context_length]``; default open_clip's bundled BPE
            tokenizer at the model's context length.
        image_size: eval resize/crop size; default the image tower's input size.
        mean, std: normalisation (default OpenAI CLIP's, ``open_clip.OPENAI_DATASET_MEAN`` / ``_STD``).
        interpolation: ``"bicubic"`` (OpenAI, SeTAR) or ``"bilinear"`` (MCM, GL-MCM, NegLabel).
        family: architecture family (:data:`oodbench.backbones.base.FAMILIES`), None when outside them.
    """

    kind = "clip"
    capabilities = frozenset({"layerwise", "mlp_stage", "layer_states", "text_encoder", "local_features",
                              "fast_arithmetic"})

    def __init__(
        self,
        model: nn.Module,
        name: str,
        pretrained: str | None = None,
        *,
        tokenizer: Callable | None = None,
        image_size: int | None = None,
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        interpolation: str = "bicubic",
        family: str | None = None,
    ):
        super().__init__(model, name, pretrained, family=family)
        self.visual = _check_vision_tower(model, name)
        self._text = TextTower(model, name)
        if interpolation not in INTERPOLATIONS:
            raise UserError(f"{name}: interpolation must be one of {', '.join(INTERPOLATIONS)}, got '{interpolation}'")
        self.interpolation = interpolation
        if image_size is None:
            size = tuple(self.visual.image_size)
            if size[0] != size[1]:
                raise IncompatibleError(f"{name}: non-square image towers ({size}) are not supported")
            image_size = int(size[0])
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer

            tokenizer = SimpleTokenizer(context_length=self._text.context_length)
        tok_ctx = getattr(tokenizer, "context_length", None)
        if tok_ctx is not None and tok_ctx > self._text.context_length:
            raise IncompatibleError(
                f"{name}: tokenizer context length {tok_ctx} exceeds the model's {self._text.context_length}"
            )
        self.tokenizer = tokenizer

    # --------------------------------------------------------------------------------- description
    @property
    def provides(self) -> frozenset[str]:
        return frozenset({"image", "local", "logits", "text", "logit_scale"})

    @property
    def embed_dim(self) -> int:
        """Dimension D of the joint image-text space."""
        return int(self.visual.output_dim)

    @property
    def num_patches(self) -> int:
        """Number P of local features per image (grid positions, class token excluded)."""
        gh, gw = self.visual.grid_size
        return int(gh * gw)

    def preprocess(self) -> Callable:
        """``Resize(size, interpolation) -> CenterCrop(size) -> RGB -> ToTensor -> Normalize(mean, std)``."""
        return transforms.Compose(
            [
                transforms.Resize(self.image_size, interpolation=INTERPOLATIONS[self.interpolation]),
                transforms.CenterCrop(self.image_size),
                _to_rgb,
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ]
        )

    def preprocess_config(self) -> dict[str, Any]:
        return {
            "resize": self.image_size,
            "crop": self.image_size,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "convert_rgb": True,
        }

    # ----------------------------------------------------------------------------------- features
    @torch.no_grad()
    def compute_features(self, images: torch.Tensor, names: set[str]) -> dict[str, torch.Tensor]:
        """``image`` ``[B, D]`` and/or ``local`` ``[B, P, D]`` (projected, not normalised).

        ``text``, ``logit_scale`` and ``logits`` are model-level or derived later and are not returned here.
        """
        _check_names(self, names)
        want = set(names) & _PER_BATCH
        if not want:
            return {}
        n = self.num_layers("vision")
        x_in = self.hidden("vision", images, n - 1)
        out = self._vision_top(x_in, need_local="local" in want)
        result = {}
        if "image" in want:
            result["image"] = out.global_
        if "local" in want:
            result["local"] = out.local
        return result

    @torch.no_grad()
    def shared_features(self, names: set[str], class_names: list[str], prompt: str) -> dict[str, Any]:
        """``text`` ``[C, D]`` float32 (embeddings of ``prompt.format(c)``, not normalised); ``logit_scale`` float."""
        _check_names(self, names)
        out: dict[str, Any] = {}
        if "text" in names:
            out["text"] = to_numpy(self.encode_text([prompt.format(c) for c in class_names])).astype(np.float32)
        if "logit_scale" in names:
            out["logit_scale"] = self.logit_scale()
        return out

    def logit_scale(self) -> float:
        """``logit_scale.exp()`` (100 for OpenAI CLIP)."""
        return float(self.model.logit_scale.detach().exp().reshape(-1)[0])

    # --------------------------------------------------------------------------------------- text
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids ``[N, context_length]`` on ``self.device``."""
        return self.tokenizer(list(prompts)).to(self.device)

    def encode_text(self, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Text embeddings ``[N, D]`` (projected, not normalised), context trimmed to each batch's longest prompt.

        Runs in the caller's grad mode.
        """
        if len(prompts) == 0:
            return torch.zeros(0, self.embed_dim, device=self.device)
        parts = []
        for i in range(0, len(prompts), batch_size):
            ids = self.tokenize(prompts[i : i + batch_size])
            parts.append(self.forward_from("text", self.hidden("text", ids, 0), 0, ids).global_)
        return torch.cat(parts)

    def text_encoder(self, batch_size: int = 256) -> "ClipTextEncoder":
        """An encoder object for postprocessors (NegLabel mining): numpy out, and a cache key of the current weights."""
        return ClipTextEncoder(self, batch_size)

    def text_cache_key(self) -> str:
        """Hash of the *current* text-tower weights and the tokenizer (changes when a modifier edits the text tower)."""
        return self._text.cache_key(self.model, self.tokenizer)

    # ------------------------------------------------------------------------------------ weights
    def target_modules(self, weight_type: str, tower: str | None = None) -> list[TargetWeight]:
        """W_q/W_k/W_v: row slices of ``attn.in_proj_weight``; W_o: ``attn.out_proj``; W_up: ``mlp.c_fc``;
        W_down: ``mlp.c_proj``; W_p: ``visual.proj`` / ``text_projection`` (stored ``[in, out]``, layer -1)."""
        if weight_type not in WEIGHT_TYPES:
            raise UserError(f"unknown weight type '{weight_type}'; known: {', '.join(WEIGHT_TYPES)}")
        towers = self._tower_names(tower)
        names = {id(p): n for n, p in self.model.named_parameters()}
        out: list[TargetWeight] = []
        for t in towers:
            if weight_type == "W_p":
                out.extend(self._projection_target(t, names))
                continue
            for i, blk in enumerate(self._blocks(t)):
                out.append(block_target(t, weight_type, i, blk, names))
        return out

    def _projection_target(self, tower: str, names: dict[int, str]) -> list[TargetWeight]:
        proj = self.visual.proj if tower == "vision" else self._text.text_projection
        if proj is None:
            return []
        if isinstance(proj, nn.Linear):
            return [TargetWeight(tower, "W_p", -1, names[id(proj.weight)], proj.weight)]
        return [TargetWeight(tower, "W_p", -1, names[id(proj)], proj, transpose=True)]

    # --------------------------------------------------------------------------- layer-wise API
    def fast_arithmetic(self):
        """Fused attention on the packed projection, one key/value projection shared by the class token and the value
        path of the last image block, the pooled token only in the last text block
        (:func:`~oodbench.backbones.clip_blocks.fast_arithmetic`)."""
        return fast_arithmetic()

    def towers(self) -> dict[str, int]:
        return {"vision": len(self.visual.transformer.resblocks), "text": len(self._text.transformer.resblocks)}

    def num_layers(self, tower: str) -> int:
        return self.towers()[self._tower_names(tower)[0]]

    def hidden(self, tower: str, inputs: torch.Tensor, layer: int) -> torch.Tensor:
        """Vision: ``[B, T, W]`` entering block ``layer`` (``[B, 2T, W]`` at ``layer == num_layers``, see the module
        docstring). Text: ``[N, L', W]`` entering block ``layer``, L' = position of the last end-of-text token + 1."""
        n = self.num_layers(tower)
        _check_layer(layer, n)
        if tower == "vision":
            return self.hidden_from(tower, self.visual._embeds(inputs.to(self._dtype())), 0, layer)
        return self._text.hidden(inputs, layer, self._dtype())

    def hidden_from(self, tower: str, hidden: torch.Tensor, start: int, stop: int,
                    inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The state entering block ``stop`` (as :meth:`hidden` gives it) from ``hidden``, the state entering block
        ``start`` (``start <= stop``): blocks ``start .. stop-1`` only. A search keeps the states of one forward and
        goes on from the nearest one below instead of from the input."""
        n = self.num_layers(tower)
        _check_layer(stop, n)
        if not 0 <= start <= stop:
            raise ValueError(f"start must be in 0..{stop}, got {start}")
        if start == stop:
            return hidden
        if tower == "text":
            return self._text.hidden_from(hidden, start, stop)
        tr = self.visual.transformer
        if stop < n:
            return run_blocks(tr, hidden, start, stop)
        x_in = run_blocks(tr, hidden, start, n - 1)
        return torch.cat([run_blocks(tr, x_in, n - 1, n), value_path(tr.resblocks[n - 1], x_in)], dim=1)

    def forward_from(self, tower: str, hidden: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> TowerOutput:
        """Vision: image ``[B, D]`` and value-path local ``[B, P, D]``. Text: embeddings ``[N, D]`` (needs ``inputs``)."""
        n = self.num_layers(tower)
        _check_layer(layer, n)
        if tower == "vision":
            if layer == n:
                t = hidden.shape[1] // 2
                return self._vision_heads(hidden[:, :t], hidden[:, t:])
            x_in = run_blocks(self.visual.transformer, hidden, layer, n - 1)
            return self._vision_top(x_in, need_local=True)
        if inputs is None:
            raise ValueError("forward_from('text', ...) needs the token ids to find the end-of-text positions")
        return self._text.forward_from(hidden, layer, inputs)

    def hidden_mlp(self, tower: str, hidden: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The state of block ``layer`` after its attention half, before its MLP half, from the state ``hidden``
        entering the block. A search of ``W_up`` / ``W_down`` in block ``layer`` changes nothing up to here.

        Vision, last block (class-token pooling): ``[B, 1 + T, W]``, the class token's post-attention state followed
        by the value path's (``x_in + out_proj(v_proj(ln_1(x_in)))``); otherwise ``x + attn(ln_1(x))`` ``[B, T, W]``.
        Text, last block, given the token ids: the pooled tokens' ``[N, 1, W]`` (no other token of it is read).
        """
        n = self.num_layers(tower)
        _check_layer(layer, n - 1)
        blk = self._blocks(tower)[layer]
        if tower == "vision":
            if layer == n - 1 and self._class_token_pooling():
                return last_block_attention(blk, hidden)
            return attention_half(blk, hidden, None)
        return self._text.hidden_mlp(hidden, layer, inputs)

    def forward_from_mlp(self, tower: str, state: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> TowerOutput:
        """Finish block ``layer`` from :meth:`hidden_mlp`'s ``state`` (its MLP half), then as :meth:`forward_from`."""
        n = self.num_layers(tower)
        _check_layer(layer, n - 1)
        blk = self._blocks(tower)[layer]
        if tower == "text":
            if inputs is None:
                raise ValueError("forward_from_mlp('text', ...) needs the token ids to find the end-of-text positions")
            return self._text.forward_from_mlp(state, layer, inputs)
        if layer == n - 1 and self._class_token_pooling():
            return self._vision_heads(*last_block_mlp(blk, state))
        return self.forward_from(tower, mlp_half(blk, state), layer + 1, inputs)

    # ---------------------------------------------------------------------------------- internals
    def _vision_top(self, x_in: torch.Tensor, need_local: bool) -> TowerOutput:
        """Last block and heads from the state entering the last block ``[B, T, W]``."""
        tr = self.visual.transformer
        n = len(tr.resblocks)
        last = tr.resblocks[n - 1]
        if self._class_token_pooling():
            # only the class token of the last block feeds the pooled output: one query instead of T, sharing
            # its normalisation and key/value projection with the value path
            if need_local:
                return self._vision_heads(*last_block_output(last, x_in))
            return self._vision_heads(class_token_output(last, x_in), None)
        x_val = value_path(last, x_in) if need_local else None
        return self._vision_heads(run_blocks(tr, x_in, n - 1, n), x_val)

    def _class_token_pooling(self) -> bool:
        v = self.visual
        return (getattr(v, "attn_pool", None) is None and not getattr(v, "final_ln_after_pool", False)
                and getattr(v, "pool_type", "tok") == "tok")

    def _vision_heads(self, x_out: torch.Tensor, x_val: torch.Tensor | None) -> TowerOutput:
        v = self.visual
        pooled, _ = v._pool(x_out)
        local = v.ln_post(x_val[:, 1:]) if x_val is not None else None
        if v.proj is not None:
            pooled = pooled @ v.proj
            local = local @ v.proj if local is not None else None
        return TowerOutput(global_=pooled, local=local)

    def _blocks(self, tower: str) -> nn.ModuleList:
        return self.visual.transformer.resblocks if tower == "vision" else self._text.transformer.resblocks

    def _tower_names(self, tower: str | None) -> list[str]:
        if tower is None:
            return ["vision", "text"]
        if tower not in ("vision", "text"):
            raise UserError(f"{self.name}: unknown tower '{tower}'; known: vision, text")
        return [tower]

    def _dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype


# ------------------------------------------------------------------------------------------- helpers
def _check_layer(layer: int, n: int) -> None:
    if not 0 <= layer <= n:
        raise ValueError(f"layer must be in 0..{n}, got {layer}")


def _check_names(backbone: Backbone, names: set[str]) -> None:
    unknown = set(names) - backbone.provides
    if unknown:
        raise IncompatibleError(
            f"{backbone.name} ({backbone.kind}) cannot produce {', '.join(sorted(unknown))}; "
            f"it provides {', '.join(sorted(backbone.provides))}"
        )


def _to_rgb(img):
    return img.convert("RGB") if hasattr(img, "convert") else img


def _check_vision_tower(model: nn.Module, name: str):
    from open_clip.transformer import VisionTransformer

    v = getattr(model, "visual", None)
    if not isinstance(v, VisionTransformer):
        raise IncompatibleError(f"{name}: only open_clip ViT image towers are supported (got {type(v).__name__})")
    if v.attn_pool is not None:
        raise IncompatibleError(f"{name}: image towers with attentional pooling are not supported")
    check_blocks(v.transformer, name, "image")
    return v
