"""``lora``: the LoRA baseline of SeTAR's fine-tuning tables — standard LoRA on one weight type in every block.

Papers: Hu et al., "LoRA", ICLR 2022; Li et al., SeTAR, NeurIPS 2024, Sec. 4.3, Table 11 (rank 32 CLIP-B/16, 64
CLIP-L/14, 112 Swin-V2-B; alpha 16). Original code: X1AOX1A/SeTAR ``finetune.py`` with ``ModifiedLoraConfig``
on every ``mlp.fc1`` of both CLIP towers (``intermediate.dense`` for Swin), peft's default init (A
Kaiming-uniform, B = 0), the same optimiser, schedule and data as SeTAR+FT (spec §10.4).

Alpha: the paper states 16. The official code never passes ``lora_alpha`` to the peft config, so peft's default 8
is what ran (scaling 8 / r); ``--lora-alpha-official`` (the same run as ``--lora-alpha 8``) reproduces that, and the
paper tables' LoRA rows use it (``oodbench.papers.setar.experiments.DEVIATIONS["lora-alpha"]``). The method's default
stays the paper's 16.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from oodbench.errors import UserError
from oodbench.method import MethodContext
from oodbench.options import at_least, positive
from oodbench.registry import register

from .finetune.method import TRAIN_OPTIONS, add_flag
from .finetune.presets import OFFICIAL_CODE_LORA_ALPHA, weight_preset
from .finetune.weights import WeightMethod

if TYPE_CHECKING:  # pragma: no cover
    from .finetune.adapters import AdapterSet

ALPHA_MODES = ("paper", "official-code")
#: The paper's alpha (Table 11), the lora presets' default for every backbone family.
PAPER_LORA_ALPHA = 16.0


@register("methods", "lora")
class LoraMethod(WeightMethod):
    """LoRA baseline: rank-r adapters on W_up of every block of both towers (LoCoOp loss, ID val split)."""

    display_name = "LoRA"
    option_names = (*TRAIN_OPTIONS, "rank", "alpha", "alpha_mode", "weight_type")

    @classmethod
    def own_words(cls, record: dict[str, Any]) -> str:
        """``rank 32, α 16, W_up`` (α as it ran: 8 with the official code's alpha)."""
        lora = record.get("lora") or {}
        alpha = lora.get("alpha")
        return ", ".join(w for w in (f"rank {lora['rank']}" if "rank" in lora else "",
                                     f"α {alpha:g}" if isinstance(alpha, (int, float)) else "",
                                     str(lora.get("weight_type") or "")) if w)

    @classmethod
    def add_own_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--lora-rank", "lora_rank", type=at_least(1), metavar="R",
                 help="LoRA rank (default: paper Table 11 — 32 CLIP-B/16, 64 CLIP-L/14, 112 Swin-V2-B)")
        add_flag(parser, "--lora-alpha", "lora_alpha", type=positive(float), metavar="A", help="LoRA alpha (default 16, the paper's)")
        add_flag(parser, "--lora-alpha-official", "lora_alpha_official", action="store_const", const=True,
                 help=f"use the official code's effective alpha {OFFICIAL_CODE_LORA_ALPHA:g} (its config's alpha "
                      "is never passed to peft), i.e. scaling 8 / r")
        add_flag(parser, "--lora-weight-type", "lora_weight_type", choices=("W_q", "W_k", "W_v", "W_o", "W_up", "W_down"),
                 help="weight adapted in every block (default W_up, as SeTAR+FT)")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        opts = super().options_from_args(args)
        for opt, dest in (("rank", "lora_rank"), ("alpha", "lora_alpha"), ("weight_type", "lora_weight_type")):
            if getattr(args, dest, None) is not None:
                opts[opt] = getattr(args, dest)
        if getattr(args, "lora_alpha_official", None):
            opts["alpha_mode"] = "official-code"
        return opts

    @classmethod
    def canonical_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``alpha_mode="official-code"`` (``--lora-alpha-official``) is ``alpha=8``; ``alpha_mode="paper"`` and
        ``alpha`` equal to the presets' 16 (every family's) are the default and dropped."""
        out = dict(options)
        mode = out.get("alpha_mode")
        if mode == "paper":
            out.pop("alpha_mode")
        elif mode == "official-code" and "alpha" not in out:
            out.pop("alpha_mode")
            out["alpha"] = OFFICIAL_CODE_LORA_ALPHA
        if "alpha_mode" not in out and out.get("alpha") == PAPER_LORA_ALPHA:
            out.pop("alpha")
        return out

    @classmethod
    def shown_options(cls) -> dict[str, Any]:
        """Alpha, always: the paper's 16 and the official code's 8 are both in use."""
        return {"alpha": PAPER_LORA_ALPHA}

    def settings(self, ctx: MethodContext) -> dict[str, Any]:
        """Rank, alpha (and where it comes from), scaling, weight type."""
        preset = weight_preset(ctx.backbone)
        rank = int(self.options.get("rank", preset.lora_rank))
        mode = self.options.get("alpha_mode", "paper")
        if mode not in ALPHA_MODES:
            raise UserError(f"lora: alpha_mode must be one of {', '.join(ALPHA_MODES)}, got '{mode}'")
        if mode == "official-code":
            if "alpha" in self.options:
                raise UserError("--lora-alpha and --lora-alpha-official exclude each other")
            alpha = OFFICIAL_CODE_LORA_ALPHA
        else:
            alpha = float(self.options.get("alpha", preset.lora_alpha))
        if rank < 1 or alpha <= 0:
            raise UserError(f"lora: rank must be >= 1 and alpha > 0, got {rank} and {alpha}")
        return {"rank": rank, "alpha": alpha, "alpha_mode": mode, "scaling": alpha / rank,
                "weight_type": self.options.get("weight_type", "W_up"), "preset": preset.source}

    def check(self, ctx: MethodContext) -> None:
        super().check(ctx)
        s = self.settings(ctx)
        for target in ctx.backbone.target_modules(s["weight_type"]):
            if s["rank"] > min(target.shape):
                raise UserError(f"lora: rank {s['rank']} exceeds the size of {target.key} {target.shape}")

    def own_ingredients(self, ctx: MethodContext) -> dict[str, Any]:
        s = self.settings(ctx)
        return {"lora": {k: s[k] for k in ("rank", "alpha", "weight_type")}}

    def attach(self, ctx: MethodContext) -> AdapterSet:
        s = self.settings(ctx)
        from .finetune.adapters import lora_adapters

        return lora_adapters(ctx.backbone, s["weight_type"], s["rank"], s["alpha"], seed=self.train_config(ctx).seed)

    def train_into(self, ctx, cfg, folder):
        out = super().train_into(ctx, cfg, folder)
        return {"lora": self.settings(ctx), **out}
