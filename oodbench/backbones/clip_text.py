"""The text tower of an open_clip CLIP: trimmed encoding, the tokenizer's identity, and the encoder NegLabel is given.

Prompts are encoded with the context trimmed to the longest prompt of the batch: the text transformer's mask is
causal, so tokens after the last pooled position (the end-of-text token) never influence the pooled embedding, and
dropping them gives the same embeddings for less work (:meth:`TextTower.trimmed_length`). For the same reason, in
the fast arithmetic (:func:`~oodbench.backbones.clip_blocks.fast_arithmetic`) the last block runs for the
pooled token only (its query; keys and values still come from every token).
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import torch
from open_clip.transformer import Transformer, text_global_pool
from torch import nn

from oodbench.backbones.base import Backbone, TowerOutput, state_dict_hash, to_numpy
from oodbench.backbones.clip_blocks import (
    attention_half,
    check_blocks,
    in_fast_arithmetic,
    mlp_half,
    pooled_token_attention,
    pooled_token_output,
    run_blocks,
)
from oodbench.errors import IncompatibleError

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

    def hidden_from(self, hidden: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """State entering block ``stop`` from ``hidden``, the state entering block ``start``."""
        return run_blocks(self.transformer, hidden, start, stop, self.mask(hidden.shape[1]))

    def pooled_positions(self, ids: torch.Tensor, length: int) -> torch.Tensor | None:
        """``[N]`` position of the token each prompt's embedding is pooled from (None when every token is kept)."""
        ids = ids[:, :length]
        if self.pool_type == "argmax":
            return ids.argmax(dim=-1)
        if self.pool_type == "eos" and self.eos_id is not None:
            return (ids == self.eos_id).int().argmax(dim=-1)
        if self.pool_type in ("first", "last"):
            return torch.full((ids.shape[0],), 0 if self.pool_type == "first" else length - 1, dtype=torch.long,
                              device=ids.device)
        return None

    def forward_from(self, hidden: torch.Tensor, layer: int, ids: torch.Tensor) -> TowerOutput:
        """Blocks ``layer ..``, the final norm, pooling at the end-of-text positions of ``ids`` and the projection.

        The last block runs for the pooled token only (:func:`~oodbench.backbones.clip_blocks.pooled_token_output`):
        no other token's output of it is read.
        """
        length = hidden.shape[1]
        n = len(self.transformer.resblocks)
        pos = self.pooled_positions(ids, length) if layer < n and in_fast_arithmetic() else None
        if pos is None:
            x = run_blocks(self.transformer, hidden, layer, n, self.mask(length))
            return self.head(text_global_pool(x, ids[:, :length], self.pool_type, eos_token_id=self.eos_id))
        x = run_blocks(self.transformer, hidden, layer, n - 1, self.mask(length))
        return self.head(pooled_token_output(self.transformer.resblocks[n - 1], x, pos, self.mask(length)))

    def hidden_mlp(self, hidden: torch.Tensor, layer: int, ids: torch.Tensor | None) -> torch.Tensor:
        """Post-attention state of block ``layer``: ``[N, L', W]``, or in the last block, given ``ids``, that of the
        pooled tokens only ``[N, 1, W]`` (the query :meth:`forward_from` computes there)."""
        n = len(self.transformer.resblocks)
        blk = self.transformer.resblocks[layer]
        mask = self.mask(hidden.shape[1])
        last = layer == n - 1 and ids is not None and in_fast_arithmetic()
        pos = self.pooled_positions(ids, hidden.shape[1]) if last else None
        if pos is None:
            return attention_half(blk, hidden, mask)
        return pooled_token_attention(blk, hidden, pos, mask)

    def forward_from_mlp(self, state: torch.Tensor, layer: int, ids: torch.Tensor) -> TowerOutput:
        """Finish block ``layer`` from :meth:`hidden_mlp`'s ``state``, then as :meth:`forward_from`; in the last block
        the MLP runs for the pooled tokens only."""
        n = len(self.transformer.resblocks)
        blk = self.transformer.resblocks[layer]
        pos = self.pooled_positions(ids, state.shape[1]) if layer == n - 1 and in_fast_arithmetic() else None
        if pos is None:
            return self.forward_from(mlp_half(blk, state), layer + 1, ids)
        if state.shape[1] != 1:  # a whole post-attention state: keep the pooled tokens
            state = state[torch.arange(state.shape[0], device=state.device), pos].unsqueeze(1)
        return self.head(mlp_half(blk, state)[:, 0])

    def head(self, pooled: torch.Tensor) -> TowerOutput:
        """Final norm and projection of pooled states ``[N, W]`` (the norm is per token: pooling first is the same)."""
        x = self.ln_final(pooled)
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

    def __init__(self, backbone: Backbone, batch_size: int = 256):  # a ClipBackbone (which imports this module)
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
