"""The text tower of an open_clip CLIP: trimmed encoding, the tokenizer's identity, and the encoder NegLabel is given.

Prompts are encoded with the context trimmed to the longest prompt of the batch: the text transformer's mask is
causal, so tokens after the last pooled position (the end-of-text token) never influence the pooled embedding, and
dropping them gives the same embeddings for less work (:meth:`TextTower.trimmed_length`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from open_clip.transformer import Transformer, text_global_pool
from torch import nn

from oodbench.backbones.base import TowerOutput, state_dict_hash, to_numpy
from oodbench.backbones.clip_blocks import check_blocks, run_blocks
from oodbench.errors import IncompatibleError

if TYPE_CHECKING:
    from oodbench.backbones.clip import ClipBackbone

_TOKENIZER_PROBE = "a photo of a tokenizer probe, with punctuation!"


class TextTower:
    """Uniform access to the text tower of ``CLIP`` (parts on the model) or ``CustomTextCLIP`` (``model.text``)."""

    def __init__(self, model: nn.Module, name: str):
        src = getattr(model, "text", None)
        if src is not None and isinstance(src, nn.Module):
            self.prefix = "text."
            if getattr(src, "cls_emb", None) is not None:
                raise IncompatibleError(f"{name}: text towers with a class token are not supported")
            self.pool_type = src.pool_type
            self.eos_id = getattr(src, "eos_id", None)
        else:
            src = model
            self.prefix = ""
            self.pool_type = model.text_pool_type
            self.eos_id = getattr(model, "text_eos_id", None)
        for part in ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection"):
            if not hasattr(src, part):
                raise IncompatibleError(f"{name}: the text tower has no '{part}' (Hugging Face text towers are not supported)")
        check_blocks(src.transformer, name, "text")
        self.src = src

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.src.token_embedding

    @property
    def positional_embedding(self) -> torch.Tensor:
        return self.src.positional_embedding

    @property
    def transformer(self) -> Transformer:
        return self.src.transformer

    @property
    def ln_final(self) -> nn.Module:
        return self.src.ln_final

    @property
    def text_projection(self):
        return self.src.text_projection

    @property
    def context_length(self) -> int:
        return int(self.src.positional_embedding.shape[0])

    def mask(self, length: int) -> torch.Tensor | None:
        m = self.src.attn_mask
        return None if m is None else m[:length, :length]

    def trimmed_length(self, ids: torch.Tensor) -> int:
        """Shortest prefix that gives the same pooled embedding: up to the last pooled position (causal mask only)."""
        full = ids.shape[1]
        if self.src.attn_mask is None or ids.shape[0] == 0:
            return full
        if self.pool_type == "argmax":
            pos = ids.argmax(dim=-1)
        elif self.pool_type == "eos" and self.eos_id is not None:
            pos = (ids == self.eos_id).int().argmax(dim=-1)
        elif self.pool_type == "first":
            return 1
        else:
            return full
        return int(pos.max()) + 1

    def hidden(self, ids: torch.Tensor, layer: int, dtype: torch.dtype) -> torch.Tensor:
        """State ``[N, L', W]`` entering block ``layer`` for token ids ``[N, L]``, L' = :meth:`trimmed_length`."""
        ids = ids[:, : self.trimmed_length(ids)]
        x = self.token_embedding(ids).to(dtype) + self.positional_embedding[: ids.shape[1]].to(dtype)
        return run_blocks(self.transformer, x, 0, layer, self.mask(ids.shape[1]))

    def forward_from(self, hidden: torch.Tensor, layer: int, ids: torch.Tensor) -> TowerOutput:
        """Blocks ``layer ..``, the final norm, pooling at the end-of-text positions of ``ids`` and the projection."""
        length = hidden.shape[1]
        x = run_blocks(self.transformer, hidden, layer, len(self.transformer.resblocks), self.mask(length))
        x = self.ln_final(x)
        x = text_global_pool(x, ids[:, :length], self.pool_type, eos_token_id=self.eos_id)
        proj = self.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return TowerOutput(global_=x)

    def cache_key(self, model: nn.Module, tokenizer: Callable) -> str:
        """Hash of the *current* text-tower weights of ``model`` and of ``tokenizer``."""
        prefix = self.prefix
        state = {
            k: v
            for k, v in model.state_dict().items()
            if (k.startswith(prefix) if prefix else not (k.startswith("visual.") or k.startswith("logit_")))
        }
        h = hashlib.sha256(state_dict_hash(state).encode())
        h.update(tokenizer_id(tokenizer).encode())
        return h.hexdigest()[:16]


class ClipTextEncoder:
    """What NegLabel mining needs: ``encode_text(list[str]) -> np.ndarray [N, D]`` float32 (not normalised) and a
    ``cache_key`` that hashes the current text-tower weights and the tokenizer."""

    def __init__(self, backbone: "ClipBackbone", batch_size: int = 256):
        self.backbone = backbone
        self.batch_size = batch_size

    @property
    def cache_key(self) -> str:
        return self.backbone.text_cache_key()

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> np.ndarray:
        return to_numpy(self.backbone.encode_text(list(texts), self.batch_size)).astype(np.float32)


def tokenizer_id(tokenizer: Callable) -> str:
    """Class, context length and the ids of a probe sentence: changes whenever the tokenization would."""
    ids = tokenizer([_TOKENIZER_PROBE])
    probe = hashlib.sha256(np.asarray(ids).astype(np.int64).tobytes()).hexdigest()[:12]
    return f"{type(tokenizer).__module__}.{type(tokenizer).__name__}:ctx={getattr(tokenizer, 'context_length', '?')}:{probe}"
