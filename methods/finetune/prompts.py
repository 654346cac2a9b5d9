"""LoCoOp / CoOp learnable prompt context on a CLIP backbone.

Papers: Zhou et al., "Learning to Prompt for Vision-Language Models" (CoOp), IJCV 2022; Miyai et al., "LoCoOp:
Few-Shot Out-of-Distribution Detection via Prompt Learning", NeurIPS 2023. Original code: AtsuMiyai/LoCoOp
``trainers/locoop.py`` (``PromptLearner``: prompt ``"X X ... X {class}."``, context vectors drawn from N(0, 0.02²),
one shared context by default (``CSC False``), class token at the end).

The prompt of class ``c`` is tokenised as ``"X " * n_ctx + name + "."``; in the embedded sequence the ``n_ctx``
placeholder embeddings are replaced by the learned context (positional embeddings stay), and the text tower runs
as usual, pooled at the end-of-text token. Nothing else of the model changes.
"""

from __future__ import annotations

import torch
from torch import nn

from oodbench.errors import UserError

PLACEHOLDER = "X"
SUFFIX = "."
INIT_STD = 0.02


def prompt_texts(class_names: list[str], n_ctx: int) -> list[str]:
    """``"X X ... X {name}."`` per class (underscores in names become spaces, as CoOp)."""
    prefix = " ".join([PLACEHOLDER] * n_ctx)
    return [f"{prefix} {name.replace('_', ' ')}{SUFFIX}" for name in class_names]


def token_embedding(backbone) -> nn.Embedding:
    """The token embedding of an open_clip CLIP (``model.token_embedding``, or ``model.text.token_embedding``)."""
    model = backbone.model
    text = getattr(model, "text", None)
    src = text if isinstance(text, nn.Module) and hasattr(text, "token_embedding") else model
    emb = getattr(src, "token_embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise UserError(f"{backbone.name}: no token embedding found; LoCoOp needs an open_clip CLIP text tower")
    return emb


class PromptLearner(nn.Module):
    """Learnable context vectors ``ctx``: ``[n_ctx, W]`` (unified) or ``[C, n_ctx, W]`` (class-specific).

    Args:
        backbone: a ``clip`` backbone (its text tower is read, never changed).
        class_names: the ID classes, in label order.
        n_ctx: number of context tokens (16 in LoCoOp).
        class_specific: one context per class (CoOp's CSC) instead of one shared context.
        seed: seed of the N(0, 0.02²) initialisation.
        ctx: initial context (loading learned prompts) instead of the random draw.
    """

    def __init__(self, backbone, class_names: list[str], n_ctx: int = 16, class_specific: bool = False,
                 seed: int = 0, ctx: torch.Tensor | None = None):
        super().__init__()
        if backbone.kind != "clip":
            raise UserError(f"LoCoOp prompts need a CLIP backbone, not {backbone.name} ({backbone.kind})")
        if n_ctx < 1:
            raise UserError(f"LoCoOp: the number of context tokens must be >= 1, got {n_ctx}")
        self.class_names = [str(c) for c in class_names]
        self.n_ctx = int(n_ctx)
        self.class_specific = bool(class_specific)
        emb = token_embedding(backbone)
        ids = backbone.tokenize(prompt_texts(self.class_names, self.n_ctx))
        length = ids.shape[1]
        suffix_ids = backbone.tokenize([f"{c.replace('_', ' ')}{SUFFIX}" for c in self.class_names])
        needed = int(suffix_ids.argmax(dim=-1).max()) + 1 + self.n_ctx  # SOT + ctx + name tokens + "." + EOT
        x_id = int(backbone.tokenize([PLACEHOLDER])[0, 1])
        if needed > length or not bool((ids[:, 1 : 1 + n_ctx] == x_id).all()):
            raise UserError(f"{backbone.name}: {n_ctx} context tokens plus the longest class name need {needed} "
                            f"tokens, more than its text context of {length}; use fewer context tokens")
        self.register_buffer("ids", ids, persistent=False)
        width = emb.embedding_dim
        shape = (len(self.class_names), self.n_ctx, width) if self.class_specific else (self.n_ctx, width)
        if ctx is None:
            gen = torch.Generator().manual_seed(int(seed))
            ctx = torch.randn(shape, generator=gen) * INIT_STD
        elif tuple(ctx.shape) != shape:
            raise UserError(f"learned prompts of shape {tuple(ctx.shape)} do not fit {backbone.name} with "
                            f"{len(self.class_names)} classes (expected {shape})")
        self.ctx = nn.Parameter(ctx.detach().to(device=emb.weight.device, dtype=torch.float32).clone())
        with torch.no_grad():
            self.register_buffer("placeholder", emb(ids[:, 1 : 1 + n_ctx]).float(), persistent=False)

    def text_features(self, backbone) -> torch.Tensor:
        """Text embeddings ``[C, D]`` (projected, not normalised) with the learned context; grad flows to ``ctx``."""
        ids = self.ids
        h = backbone.hidden("text", ids, 0)  # token + positional embeddings [C, L', W]
        n = self.n_ctx
        ctx = self.ctx if self.class_specific else self.ctx.unsqueeze(0).expand(len(self.class_names), -1, -1)
        mid = h[:, 1 : 1 + n] - self.placeholder.to(h.dtype) + ctx.to(h.dtype)
        x = torch.cat([h[:, :1], mid, h[:, 1 + n :]], dim=1)
        return backbone.forward_from("text", x, 0, ids).global_

    def describe(self) -> dict:
        return {"n_ctx": self.n_ctx, "class_specific": self.class_specific, "template": prompt_texts(["{}"], self.n_ctx)[0],
                "num_classes": len(self.class_names)}
