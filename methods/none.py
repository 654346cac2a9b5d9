"""The ``none`` method and modifier: the model exactly as loaded (the vanilla rows of every table)."""

from __future__ import annotations

from oodbench.method import NONE_KEY, Method, MethodContext, Modification
from oodbench.errors import UserError
from oodbench.registry import register


@register("methods", "none", aliases=("vanilla",))
class NoMethod(Method):
    """The model as loaded (vanilla): no search, no training, no weight change."""

    display_name = "Vanilla"
    baseline = True

    def check(self, ctx: MethodContext) -> None:  # every backbone kind, no split needed
        return None

    def prepare(self, ctx: MethodContext) -> Modification:
        return Modification(method=self.name, key=NONE_KEY, record={"name": self.name, "hash": NONE_KEY})


@register("modifiers", "none")
class NoModifier:
    """Leaves the backbone as loaded (the vanilla model)."""

    def apply(self, backbone, plan=None) -> "NoModifier":
        if plan is not None and plan.active:
            raise UserError("modifier 'none' cannot apply a plan that modifies weights; use the 'setar' modifier")
        return self

    def restore(self) -> None:
        return None

    @property
    def plan_hash(self) -> str:
        return NONE_KEY
