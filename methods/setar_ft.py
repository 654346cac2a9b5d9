"""``setar-ft``: SeTAR+FT — fine-tune the minor singular components SeTAR removes, on top of the kept ones.

Paper: Li et al., SeTAR, NeurIPS 2024, Sec. 3.2 (Eq. 6-8), Sec. 4.3, Tables 2 / 11 / 12, Figure 6. Original code:
X1AOX1A/SeTAR ``finetune.py`` with ``lora_settings`` = the training-free search result, ``svd_init("small")``,
``disable_lora_scaling()`` (spec §10.1). Every active entry of the SeTAR plan becomes the frozen
``W' = U0 S0 V0^T`` plus trainable ``B = U1 sqrt(S1)``, ``A = sqrt(S1) V1^T`` (scaling 1): at step 0 the model
is the original one; biases and everything else are frozen.

The plan comes from ``--plan FILE`` or the ``setar`` method (a cached search on the same ID val split).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from oodbench.method import MethodContext
from oodbench.registry import register

from .finetune.method import TRAIN_OPTIONS, add_flag
from .finetune.weights import WeightMethod

if TYPE_CHECKING:  # pragma: no cover
    from .finetune.adapters import AdapterSet


@register("methods", "setar-ft", aliases=("setar_ft",))
class SetarFTMethod(WeightMethod):
    """SeTAR+FT: train the minor singular components of a SeTAR plan's weights (LoCoOp loss, ID val split)."""

    display_name = "SeTAR+FT"
    option_names = (*TRAIN_OPTIONS, "plan_file", "setar")

    @classmethod
    def plan_figure(cls, plan: Any, stem, title: str = "") -> list:
        """The rank-ratio map of the SeTAR plan the fine-tuning started from (as SeTAR draws it)."""
        from oodbench.methods.setar.method import SetarMethod

        return SetarMethod.plan_figure(plan, stem, title)

    @classmethod
    def options_for_seed(cls, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """The nested SeTAR search's random prune order follows the run's seed, as SeTAR's own."""
        if (options.get("setar") or {}).get("prune") == "random":
            return {**options, "setar": {**options["setar"], "seed": seed}}
        return dict(options)

    @classmethod
    def own_words(cls, record: dict[str, Any]) -> str:
        """``minor components of a SeTAR plan (λ 0.1, top-K 2, SeTAR-S, ...)``: the ranks come from the plan."""
        from oodbench.methods.setar.method import plan_words

        plan = record.get("plan")
        return f"minor components of a SeTAR plan ({plan_words(plan)})" if isinstance(plan, dict) else ""

    @classmethod
    def add_own_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--plan", "plan_file", metavar="FILE",
                 help="SeTAR plan JSON (default: search one on the ID val split, or reuse the cached search)")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        from oodbench.methods.setar import SetarMethod

        opts = super().options_from_args(args)
        if getattr(args, "plan_file", None):
            opts["plan_file"] = args.plan_file
        setar = {k: v for k, v in SetarMethod.options_from_args(args).items() if k != "plan_file"}
        if setar:
            opts["setar"] = setar
        return opts

    def _setar(self):
        from oodbench.methods.setar import SetarMethod

        opts = dict(self.options.get("setar") or {})
        if self.options.get("plan_file"):
            opts["plan_file"] = self.options["plan_file"]
        return SetarMethod(**opts)

    def check(self, ctx: MethodContext) -> None:
        super().check(ctx)
        self._setar().check(ctx)

    def plan(self, ctx: MethodContext):
        """The SeTAR plan (``--plan`` file, cached search, or a new search); obtained once per context."""
        memo = getattr(self, "_plan_memo", None)
        if memo is not None and memo[0] is ctx:
            return memo[1]
        plan, _ = self._setar().obtain_plan(ctx)
        self._plan_memo = (ctx, plan)
        return plan

    def own_ingredients(self, ctx: MethodContext) -> dict[str, Any]:
        plan = self.plan(ctx)
        return {"plan": plan.hash(), "prune": plan.prune}

    def attach(self, ctx: MethodContext) -> AdapterSet:
        from .finetune.adapters import setar_ft_adapters

        return setar_ft_adapters(ctx.backbone, self.plan(ctx))

    def train_into(self, ctx, cfg, folder):
        plan = self.plan(ctx)
        out = super().train_into(ctx, cfg, folder)
        return {"plan": {"hash": plan.hash(), **plan.to_dict()}, **out}
