"""Matrix-multiply FLOPs of the CLIP layer-wise forward, counted from the model's shapes.

The counts are of the SeTAR search's arithmetic (the CLIP backbone's ``fast_arithmetic`` capability,
:func:`~oodbench.backbones.clip_blocks.fast_arithmetic`). What
an exact SeTAR search cannot avoid is measured in these units: for each candidate, the blocks from the searched
one up, the heads and the loss (:mod:`oodbench.methods.setar.efficiency`). Only matrix products are counted (two
FLOPs per multiply-add): projections, attention scores and their weighted sums, the MLPs, the heads; norms,
activations, softmax and residual additions are not. Work that no output reads is not counted either: the last
image block's pooled output needs the class token's query only and the local features the value path of the patch
tokens (so the value projection is counted once, inside the attention's key/value projections); the last text block
needs the pooled token's query only. Text attention is counted over the whole (trimmed) square although the mask is
causal, as a dense attention computes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.backbones.clip import ClipBackbone


def block_flops(n: int, tokens: int, width: int, mlp: int, mlp_only: bool = False) -> int:
    """One full residual block on ``n`` sequences of ``tokens`` tokens (``mlp_only``: its MLP half alone)."""
    mlp_half = 2 * n * tokens * width * mlp * 2
    if mlp_only:
        return mlp_half
    attn = 2 * n * tokens * width * 4 * width + 2 * n * tokens * tokens * width * 2
    return attn + mlp_half


def pooled_block_flops(n: int, tokens: int, width: int, mlp: int, outputs: int, mlp_only: bool = False) -> int:
    """A block of which ``outputs`` tokens per sequence are read, one of them through the attention (the pooled
    query, keys and values of every token) and all ``outputs`` through the output projection and the MLP."""
    mlp_half = 2 * n * outputs * width * mlp * 2
    if mlp_only:
        return mlp_half
    kv = 2 * n * tokens * width * 2 * width
    query = 2 * n * width * width + 2 * n * tokens * width * 2
    out = 2 * n * outputs * width * width
    return kv + query + out + mlp_half


def _dims(blocks) -> tuple[int, int]:
    blk = blocks[0]
    return int(blk.attn.embed_dim), int(blk.mlp.c_fc.out_features)


def vision_flops(bb: "ClipBackbone", n_images: int, layer: int, mlp_only: bool = False) -> int:
    """``forward_from('vision', ., layer)`` (``mlp_only``: ``forward_from_mlp``) on ``n_images`` images; ``layer ==
    -1`` adds the patch embedding (the whole forward from pixels)."""
    v = bb.visual
    blocks = v.transformer.resblocks
    n_layers = len(blocks)
    width, mlp = _dims(blocks)
    patches = bb.num_patches
    tokens = patches + 1
    dim = int(v.output_dim) if v.proj is not None else width
    total = 2 * n_images * tokens * width * dim  # heads: pooled + local projections
    if layer >= n_layers:
        return total
    stem = 0
    if layer < 0:
        k = v.conv1.kernel_size
        stem = 2 * n_images * patches * v.conv1.in_channels * k[0] * k[1] * width
        layer = 0
    cls_pool = bb._class_token_pooling()
    for i in range(layer, n_layers):
        half = mlp_only and i == layer
        if i < n_layers - 1:
            total += block_flops(n_images, tokens, width, mlp, half)
        elif cls_pool:  # class-token query, value path of the patch tokens
            total += pooled_block_flops(n_images, tokens, width, mlp, tokens, half)
        else:  # the whole block, and the value path of the patch tokens beside it
            total += block_flops(n_images, tokens, width, mlp, half)
            total += 0 if half else 2 * n_images * patches * width * width * 2
            total += 2 * n_images * patches * width * mlp * 2
    return total + stem


def text_flops(bb: "ClipBackbone", ids: torch.Tensor, layer: int, mlp_only: bool = False) -> int:
    """``forward_from('text', ., layer, ids)`` (``mlp_only``: ``forward_from_mlp``) on one batch of token ids
    ``[N, L]``, trimmed as the backbone trims it; ``layer == -1`` is the whole forward (the embedding is a lookup)."""
    tt = bb._text
    blocks = tt.transformer.resblocks
    n_layers = len(blocks)
    width, mlp = _dims(blocks)
    n = int(ids.shape[0])
    length = tt.trimmed_length(ids)
    proj = tt.text_projection
    dim = width if proj is None else int(proj.weight.shape[0] if isinstance(proj, torch.nn.Linear) else proj.shape[1])
    pooled = tt.pooled_positions(ids, length) is not None
    total = 2 * n * width * dim if pooled else 2 * n * length * width * dim
    for i in range(max(layer, 0), n_layers):
        half = mlp_only and i == layer
        if i == n_layers - 1 and pooled:
            total += pooled_block_flops(n, length, width, mlp, 1, half)
        else:
            total += block_flops(n, length, width, mlp, half)
    return total


def loss_flops(n_images: int, n_patches: int, dim: int, n_classes: int) -> int:
    """Global and per-patch logits of the LoCoOp loss: ``[N, D] x [D, C]`` and ``[N, P, D] x [D, C]``."""
    return 2 * n_images * (1 + n_patches) * dim * n_classes
