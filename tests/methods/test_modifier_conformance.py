"""Conformance suite run over EVERY registered modifier, on the tiny CLIP and the tiny timm ViT.

The checks live in :mod:`oodbench.testing.modifiers` (exported for plugin authors): restore without apply is a
no-op; the empty plan changes nothing and hashes to "none"; apply -> restore is bit-exact over every parameter and
buffer; applying twice equals applying once; the plan hash survives a JSON round trip and entry reordering and
changes with a ratio; a second modifier is refused while one is active. Below them, broken toy modifiers show
that each check fails when its property does not hold.
"""

from __future__ import annotations

import json

import pytest
import torch

from oodbench.errors import UserError
from oodbench.methods.setar.modifier import find_target
from oodbench.methods.setar.plan import Plan
from oodbench.registry import names
from oodbench.testing import checks, parametrize_with_checks, registered
from oodbench.testing import modifiers as suite
from oodbench.testing.fixtures import tiny_backbone


def test_builtins_are_registered_and_setar_gets_every_check():
    assert {"none", "setar"} <= set(names("modifiers"))
    from oodbench.registry import get

    funcs = {n for n in dir(suite) if n.startswith("check_")}
    got = [c.name for c in checks("modifiers", get("modifiers", "setar"))]
    assert {n.split("[")[0] for n in got} == funcs
    assert sum(n.endswith("[test_clip_tiny]") for n in got) == sum(n.endswith("[test_vit_tiny]") for n in got) == 6
    # `none` reads no plan: it gets the plan-free checks only
    assert {c.name.split("[")[0] for c in checks("modifiers", get("modifiers", "none"))} == {
        "check_interface", "check_restore_without_apply_is_a_no_op", "check_empty_plan_is_a_no_op"}


@parametrize_with_checks("modifiers", registered("modifiers"))
def test_modifier_conformance(obj, check):
    check(obj)


def test_check_plan_on_the_tiny_clip():
    """The plan the checks apply, written out by hand for test_clip_tiny (2 + 2 blocks, packed q/k/v)."""
    data, touched = suite.plan_json(tiny_backbone("test_clip_tiny"))
    assert [(e["tower"], e["weight_type"], e["layer"], e["ratio"]) for e in data["entries"]] == [
        ("vision", "W_up", 0, 0.25), ("vision", "W_up", 1, 0.25), ("text", "W_up", 0, 0.25), ("text", "W_up", 1, 0.25),
        ("vision", "W_q", 0, 0.3), ("vision", "W_p", -1, 0.1), ("vision", "W_down", 0, 0.0)]
    assert touched == {"visual.transformer.resblocks.0.mlp.c_fc.weight", "visual.transformer.resblocks.1.mlp.c_fc.weight",
                       "transformer.resblocks.0.mlp.c_fc.weight", "transformer.resblocks.1.mlp.c_fc.weight",
                       "visual.transformer.resblocks.0.attn.in_proj_weight", "visual.proj"}


# ------------------------------------------------------------------------------------------ broken modifiers
class Scale:
    """A toy modifier: multiplies each planned weight by (1 - ratio); restore writes the saved copies back.

    Correct as written; the subclasses below each break one property.
    """

    plan_from_dict = staticmethod(Plan.from_dict)

    def __init__(self):
        self.backbone = None
        self.plan = None
        self._saved: dict[str, tuple] = {}

    def apply(self, backbone, plan):
        self.restore()
        other = getattr(backbone, "_toy_modifier", None)
        if other is not None and other is not self:
            raise UserError("backbone already modified")
        for e in plan.active:
            self._scale(find_target(backbone, e.tower, e.weight_type, e.layer), e.ratio)
        self.backbone, self.plan = backbone, plan
        if plan.active:
            backbone._toy_modifier = self
        return self

    def _scale(self, t, ratio):
        self._saved.setdefault(t.key, (t, t.get().clone()))
        t.set(t.get() * (1 - ratio))

    def restore(self):
        for t, w in self._saved.values():
            t.set(w)
        self._saved.clear()
        self.plan = None
        if self.backbone is not None and getattr(self.backbone, "_toy_modifier", None) is self:
            del self.backbone._toy_modifier

    @property
    def plan_hash(self):
        return self.plan.hash() if self.plan is not None else "none"


class DoubleApply(Scale):
    """Does not undo the previous plan before applying: a second apply scales twice."""

    def apply(self, backbone, plan):
        for e in plan.active:
            self._scale(find_target(backbone, e.tower, e.weight_type, e.layer), e.ratio)
        self.backbone, self.plan = backbone, plan
        return self


class InverseRestore(Scale):
    """Restores by dividing by (1 - ratio): equal up to rounding, not bit-exact."""

    def restore(self):
        if self.plan is not None:
            for e in self.plan.active:
                t = find_target(self.backbone, e.tower, e.weight_type, e.layer)
                t.set(t.get() / (1 - e.ratio))
        self._saved.clear()
        self.plan = None
        if self.backbone is not None and getattr(self.backbone, "_toy_modifier", None) is self:
            del self.backbone._toy_modifier


class OrderedHash(Scale):
    """Hashes the entries in their listed order."""

    @property
    def plan_hash(self):
        if self.plan is None or not self.plan.active:
            return "none"
        return json.dumps([e.to_dict() for e in self.plan.active])


class Sharing(Scale):
    """Never refuses a second modifier on the same backbone."""

    def apply(self, backbone, plan):
        backbone.__dict__.pop("_toy_modifier", None)
        return super().apply(backbone, plan)


class Overreach(Scale):
    """Also scales the first LayerNorm-like 1-D parameter, outside the plan."""

    def apply(self, backbone, plan):
        super().apply(backbone, plan)
        if plan.active:
            p = next(p for p in backbone.model.parameters() if p.ndim == 1)
            with torch.no_grad():
                p.mul_(0.5)
        return self


class EmptyHashed(Scale):
    """Reports a hash even for a plan that changes nothing."""

    @property
    def plan_hash(self):
        return "none" if self.plan is None else "h-" + str(len(self.plan.entries))


def test_a_correct_toy_modifier_passes_every_check():
    for check in checks("modifiers", Scale):
        check(Scale)


BROKEN = [
    (DoubleApply, suite.check_applying_twice_equals_applying_once, "a second time"),
    (InverseRestore, suite.check_apply_then_restore_is_bit_exact, "restore"),
    (OrderedHash, suite.check_plan_hash_stability, "order of the entries"),
    (Sharing, suite.check_second_modifier_is_refused_while_one_is_active, "DID NOT RAISE"),
    (Overreach, suite.check_apply_then_restore_is_bit_exact, "beyond the plan"),
    (EmptyHashed, suite.check_empty_plan_is_a_no_op, "must hash to 'none'"),
]


@pytest.mark.parametrize("cls, check, match", [pytest.param(*b, id=b[0].__name__) for b in BROKEN])
@pytest.mark.parametrize("backbone", ["test_clip_tiny", "test_vit_tiny"])
def test_each_check_rejects_the_modifier_that_breaks_it(cls, check, match, backbone):
    with pytest.raises((AssertionError, pytest.fail.Exception), match=match):
        check(cls, backbone=backbone)
