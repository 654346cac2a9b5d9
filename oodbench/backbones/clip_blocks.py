"""Block arithmetic of open_clip residual attention blocks, on batch-first tokens ``[B, T, W]``.

A block is ``x1 = x + ls_1(attn(ln_1(x)))`` (the attention half) then ``x2 = x1 + ls_2(mlp(ln_2(x1)))`` (the MLP
half). Besides running whole blocks (:func:`run_blocks`) the CLIP backbone needs four variants of it:

* the **value path** of the last vision block (:func:`value_path`), the local features of GL-MCM / SeTAR: each token
  through the value and output projections with no token mixing (Li et al., NeurIPS 2024, github.com/X1AOX1A/SeTAR
  ``src/svd_ood/svd_ood/models/clip/modeling_clip.py``; Miyai et al. 2023, github.com/AtsuyaMiyai/GL-MCM);
* the **class-token-only** last block (:func:`class_token_output`): with class-token pooling only that token's output
  is read, so one query attends to every key instead of T queries;
* the **pooled-token-only** last text block (:func:`pooled_token_output`): one query per prompt (its end-of-text
  token), keys and values from every token;
* the two **halves** separately (:func:`self_attention` + the residual, :func:`mlp_half`), so that a search of a
  block's MLP weights can start after the block's attention half.

Also :func:`block_target`, the named weights of one block (W_q/W_k/W_v as row slices of the packed
``attn.in_proj_weight``), and :func:`check_blocks`, the block types these functions support.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU, ResidualAttentionBlock, Transformer
from torch import nn

from oodbench.backbones.base import TargetWeight
from oodbench.errors import IncompatibleError


_MODE = threading.local()


@contextmanager
def fast_arithmetic() -> Iterator[None]:
    """The CLIP backbone's ``fast_arithmetic`` capability (:meth:`oodbench.backbones.base.Backbone.fast_arithmetic`;
    a search that evaluates many candidates uses it). Inside this block attention runs through
    ``F.scaled_dot_product_attention`` on the packed
    projection (:func:`self_attention`), the last image block shares one normalisation and key/value projection
    between the class token and the value path (:func:`last_block_attention`), and the last text block runs for the
    pooled token only. The numbers equal the default arithmetic to float32 rounding (about 1e-6), not bit for bit;
    outside, the blocks run through open_clip's own modules, so extracted features (and every stored result) keep
    the arithmetic of the official model code."""
    previous = getattr(_MODE, "fast", False)
    _MODE.fast = True
    try:
        yield
    finally:
        _MODE.fast = previous


def in_fast_arithmetic() -> bool:
    """Whether :func:`fast_arithmetic` is active in this thread."""
    return getattr(_MODE, "fast", False)


def run_blocks(tr: Transformer, x: torch.Tensor, start: int, stop: int, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Blocks ``start .. stop-1`` of an open_clip ``Transformer`` on batch-first ``x`` ``[B, T, W]``."""
    if start >= stop:
        return x
    if in_fast_arithmetic():
        for blk in tr.resblocks[start:stop]:
            x = mlp_half(blk, attention_half(blk, x, attn_mask))
        return x
    if not tr.batch_first:
        x = x.transpose(0, 1)
    for blk in tr.resblocks[start:stop]:
        x = blk(x, attn_mask=attn_mask)
    return x if tr.batch_first else x.transpose(0, 1)


def value_path(block: ResidualAttentionBlock, x_in: torch.Tensor) -> torch.Tensor:
    """The value path of one open_clip residual block on batch-first tokens ``[B, T, W]`` -> ``[B, T, W]``.

    ``v = out_proj(v_proj(ln_1(x_in))); v = x_in + ls_1(v); v = v + ls_2(mlp(ln_2(v)))`` (no token mixing).
    """
    return mlp_half(block, value_attention(block, x_in))


def value_attention(block: ResidualAttentionBlock, x_in: torch.Tensor) -> torch.Tensor:
    """First half of the value path: ``x_in + ls_1(out_proj(v_proj(ln_1(x_in))))``."""
    attn = block.attn
    d = attn.embed_dim
    w_v = attn.in_proj_weight[2 * d :]
    b_v = attn.in_proj_bias[2 * d :] if attn.in_proj_bias is not None else None
    return x_in + block.ls_1(_out_proj(attn, F.linear(block.ln_1(x_in), w_v, b_v)))


def mlp_half(block: ResidualAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """Second half of a residual block: ``x + ls_2(mlp(ln_2(x)))``.

    Without autograd, open_clip's QuickGELU ``h * sigmoid(1.702 * h)`` is evaluated in place on one buffer (the same
    operations in the same order, so the same numbers, with two fewer full-size temporaries).
    """
    mlp = block.mlp
    h = block.ln_2(x)
    if torch.is_grad_enabled() or not _plain_mlp(mlp):
        return x + block.ls_2(mlp(h))
    h = mlp.c_fc(h)
    t = h * 1.702
    t.sigmoid_()
    t.mul_(h)
    return x + block.ls_2(mlp.c_proj(t))


def _plain_mlp(mlp: nn.Module) -> bool:
    return isinstance(mlp, nn.Sequential) and len(mlp) == 3 and isinstance(getattr(mlp, "gelu", None), QuickGELU)


def self_attention(block: ResidualAttentionBlock, q: torch.Tensor, attn_mask: torch.Tensor | None,
                   kv: torch.Tensor | None = None) -> torch.Tensor:
    """``block.attn`` on batch-first, normalised tokens: queries ``q`` ``[B, Tq, W]``, keys and values ``kv``
    ``[B, Tk, W]`` (default ``q``), additive ``attn_mask`` broadcastable to ``[B, heads, Tq, Tk]``.

    The packed input projection, ``F.scaled_dot_product_attention`` over the heads and the output projection: the
    arithmetic of ``nn.MultiheadAttention`` (eval mode, no dropout) without its head-splitting copies; the projection
    weights are read through the module, so parametrizations (fine-tuning adapters) apply. Outside
    :func:`fast_arithmetic`, ``block.attn`` itself (``nn.MultiheadAttention``).
    """
    if not in_fast_arithmetic():
        kv = q if kv is None else kv
        mask = attn_mask.to(q.dtype) if attn_mask is not None else None
        if mask is not None and mask.dim() == 4:  # [N, 1, 1, L] -> [N * heads, 1, L], as nn.MultiheadAttention wants
            mask = mask[:, 0].repeat_interleave(block.attn.num_heads, dim=0)
        if block.attn.batch_first:
            return block.attn(q, kv, kv, need_weights=False, attn_mask=mask)[0]
        q, kv = q.transpose(0, 1), kv.transpose(0, 1)
        return block.attn(q, kv, kv, need_weights=False, attn_mask=mask)[0].transpose(0, 1)
    attn = block.attn
    w, b = attn.in_proj_weight, attn.in_proj_bias
    d = attn.embed_dim
    heads = attn.num_heads
    bsz, tq = q.shape[0], q.shape[1]
    if kv is None or kv is q:
        qkv = F.linear(q, w, b).view(bsz, tq, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        qh, kh, vh = qkv.unbind(0)
    else:
        qh = F.linear(q, w[:d], b[:d] if b is not None else None).view(bsz, tq, heads, d // heads).transpose(1, 2)
        kvh = F.linear(kv, w[d:], b[d:] if b is not None else None)
        kh, vh = kvh.view(bsz, kv.shape[1], 2, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
    mask = attn_mask.to(q.dtype) if attn_mask is not None else None
    p = attn.dropout if attn.training else 0.0
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, dropout_p=p)
    return _out_proj(attn, o.transpose(1, 2).reshape(bsz, tq, d))


def _out_proj(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, attn.out_proj.weight, attn.out_proj.bias)


def attention_half(block: ResidualAttentionBlock, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
    """First half of a residual block: ``x + ls_1(attn(ln_1(x)))``."""
    return x + block.ls_1(self_attention(block, block.ln_1(x), attn_mask))


def class_token_output(block: ResidualAttentionBlock, x_in: torch.Tensor) -> torch.Tensor:
    """``block(x_in)[:, :1]`` computed for the class token alone: ``[B, T, W]`` -> ``[B, 1, W]``.

    Keys and values come from every token, the query only from the class token; the MLP runs on one token.
    Used for the last vision block when the pooled output is the class token (OpenAI CLIP), where the other
    tokens' outputs are never read (the local features come from the value path instead).
    """
    return mlp_half(block, class_token_attention(block, x_in))


def class_token_attention(block: ResidualAttentionBlock, x_in: torch.Tensor) -> torch.Tensor:
    """Post-attention state of the class token: ``x_in[:, :1] + ls_1(attn(q = ln_1(x_in)[:, :1], kv = ln_1(x_in)))``."""
    if in_fast_arithmetic():
        return last_block_attention(block, x_in)[:, :1]
    ln = block.ln_1(x_in)
    return x_in[:, :1] + block.ls_1(self_attention(block, ln[:, :1], None, kv=ln))


def last_block_attention(block: ResidualAttentionBlock, x_in: torch.Tensor) -> torch.Tensor:
    """The class token's post-attention state followed by the value path's, ``[B, 1 + T, W]``; in
    :func:`fast_arithmetic` sharing one ``ln_1`` and one key/value projection (the value path's values are the
    attention's values)."""
    if not in_fast_arithmetic():
        return torch.cat([class_token_attention(block, x_in), value_attention(block, x_in)], dim=1)
    attn = block.attn
    w, b = attn.in_proj_weight, attn.in_proj_bias
    d, heads = attn.embed_dim, attn.num_heads
    bsz, t = x_in.shape[0], x_in.shape[1]
    ln = block.ln_1(x_in)
    kv = F.linear(ln, w[d:], b[d:] if b is not None else None).view(bsz, t, 2, d)
    k, v = kv[:, :, 0], kv[:, :, 1]
    q = F.linear(ln[:, :1], w[:d], b[:d] if b is not None else None)

    def split(z: torch.Tensor) -> torch.Tensor:
        return z.view(bsz, z.shape[1], heads, d // heads).transpose(1, 2)

    o = F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(bsz, 1, d)
    o = _out_proj(attn, torch.cat([o, v], dim=1))  # one output projection for the class token and the value path
    return torch.cat([x_in[:, :1], x_in], dim=1) + block.ls_1(o)


def last_block_output(block: ResidualAttentionBlock, x_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(class_token_output(block, x_in), value_path(block, x_in))`` (one shared attention pass in
    :func:`fast_arithmetic`)."""
    return last_block_mlp(block, last_block_attention(block, x_in))


def last_block_mlp(block: ResidualAttentionBlock, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP half of :func:`last_block_attention`'s state: ``(class token [B, 1, W], value path [B, T, W])``."""
    if in_fast_arithmetic():
        out = mlp_half(block, state)
        return out[:, :1], out[:, 1:]
    return mlp_half(block, state[:, :1]), mlp_half(block, state[:, 1:])


def pooled_token_output(block: ResidualAttentionBlock, x_in: torch.Tensor, pos: torch.Tensor,
                        attn_mask: torch.Tensor | None) -> torch.Tensor:
    """``block(x_in, attn_mask)[arange(N), pos]`` computed for those tokens alone: ``[N, L, W]`` -> ``[N, W]``.

    One query per sequence (the token at ``pos[i]``) attends to every key and value of its sequence under row
    ``pos[i]`` of ``attn_mask`` (``[L, L]``, additive, or None); the attention output, the residual and the MLP run
    on that token only. The text tower's last block, whose other tokens' outputs are never pooled.
    """
    return mlp_half(block, pooled_token_attention(block, x_in, pos, attn_mask))[:, 0]


def pooled_token_attention(block: ResidualAttentionBlock, x_in: torch.Tensor, pos: torch.Tensor,
                           attn_mask: torch.Tensor | None) -> torch.Tensor:
    """Post-attention state ``[N, 1, W]`` of the token at ``pos[i]`` of each sequence (see :func:`pooled_token_output`)."""
    rows = torch.arange(x_in.shape[0], device=x_in.device)
    ln = block.ln_1(x_in)
    mask = None
    if attn_mask is not None:  # [N, 1, 1, L]: each sequence's query row, broadcast over the heads
        mask = attn_mask.to(x_in.dtype)[pos][:, None, None, :]
    attn = self_attention(block, ln[rows, pos].unsqueeze(1), mask, kv=ln)
    return x_in[rows, pos].unsqueeze(1) + block.ls_1(attn)


def block_target(tower: str, weight_type: str, layer: int, blk: nn.Module, names: dict[int, str]) -> TargetWeight:
    """W_q/W_k/W_v (row slices of ``attn.in_proj_weight``), W_o (``attn.out_proj``), W_up (``mlp.c_fc``) or W_down
    (``mlp.c_proj``) of one block; ``names`` maps ``id(parameter)`` to its dotted name."""
    attn = blk.attn
    if weight_type in ("W_q", "W_k", "W_v"):
        d = attn.embed_dim
        i = ("W_q", "W_k", "W_v").index(weight_type)
        p = attn.in_proj_weight
        return TargetWeight(tower, weight_type, layer, names[id(p)], p, rows=slice(i * d, (i + 1) * d))
    module = {"W_o": attn.out_proj, "W_up": blk.mlp.c_fc, "W_down": blk.mlp.c_proj}[weight_type]
    return TargetWeight(tower, weight_type, layer, names[id(module.weight)], module.weight)


def check_blocks(tr: nn.Module, name: str, which: str) -> None:
    """:class:`IncompatibleError` unless ``tr`` is an open_clip ``Transformer`` of standard packed-q/k/v blocks."""
    if not isinstance(tr, Transformer):
        raise IncompatibleError(f"{name}: the {which} tower is not an open_clip Transformer")
    for blk in tr.resblocks:
        if not isinstance(blk, ResidualAttentionBlock) or not blk.attn._qkv_same_embed_dim or hasattr(blk, "ln_1_kv"):
            raise IncompatibleError(
                f"{name}: the {which} tower uses {type(blk).__name__} blocks; only standard residual attention "
                "blocks with packed q/k/v are supported"
            )
