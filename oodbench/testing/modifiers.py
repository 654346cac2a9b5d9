"""Conformance checks of modifiers (reversible weight changes applied before feature extraction).

A modifier is a class with ``apply(backbone, plan) -> self``, ``restore()`` and a ``plan_hash`` property (part of
every feature-cache key; ``"none"`` when no weight is changed). A plan is data: entries of (tower, weight type,
layer, ratio) over the backbone's :meth:`~oodbench.backbones.base.Backbone.target_modules`, plus how the weights
are cut. A modifier tells the checks how it reads a plan from its JSON form by declaring
``plan_from_dict``, a callable ``plan_from_dict({"entries": [{"tower", "weight_type", "layer", "ratio"}, ...],
"prune": "minor"}) -> plan``; without it only the empty plan (``None``) is checked.

Checks, each on a fresh tiny CLIP (``test_clip_tiny``) and a fresh tiny timm ViT (``test_vit_tiny``):

* restore without apply is a no-op, and ``plan_hash`` is ``"none"`` before any apply;
* the empty plan (no entry, or only ratio-0 entries) changes nothing and hashes to ``"none"``;
* apply changes exactly the planned weights, and restore brings back **every** parameter and buffer bit-exactly
  (values, dtype, device, ``requires_grad``, the parameter objects themselves);
* applying the same plan twice equals applying it once (no double truncation), and a fresh modifier gives the
  same weights;
* plan hash stability: the same plan after a JSON round trip, or with its entries in another order, has the
  same hash (and gives the same weights); a changed ratio changes it;
* a second modifier on the same backbone is refused (:class:`~oodbench.errors.UserError`) while one is active,
  without touching the weights, and accepted once the first is restored.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import pytest
import torch

from oodbench.errors import UserError

from . import Check
from .fixtures import TINY_CLASSIFIER, TINY_CLIP, tiny_backbone

#: The backbones every modifier is checked on.
BACKBONES = (TINY_CLIP, TINY_CLASSIFIER)
#: The hash of "no weight changed".
NONE_HASH = "none"
#: Ratios of the non-empty check plan (each removes at least one component on the tiny backbones).
RATIO_UP, RATIO_Q, RATIO_P, RATIO_CHANGED = 0.25, 0.3, 0.1, 0.35


def registered() -> list[type]:
    from oodbench.registry import get, names

    return [get("modifiers", n) for n in names("modifiers")]


def object_id(cls: type) -> str:
    return getattr(cls, "registry_name", "") or cls.__name__


def plan_reader(cls: type) -> Callable[[dict], Any] | None:
    """The modifier's ``plan_from_dict`` (JSON object -> plan), or None."""
    return getattr(cls, "plan_from_dict", None)


def checks_for(cls: type, backbones: tuple[str, ...] = BACKBONES) -> Iterator[Check]:
    yield Check(check_interface)
    with_plans = plan_reader(cls) is not None
    for bb in backbones:
        yield Check(check_restore_without_apply_is_a_no_op, backbone=bb)
        yield Check(check_empty_plan_is_a_no_op, backbone=bb)
        if with_plans:
            yield Check(check_apply_then_restore_is_bit_exact, backbone=bb)
            yield Check(check_applying_twice_equals_applying_once, backbone=bb)
            yield Check(check_plan_hash_stability, backbone=bb)
            yield Check(check_second_modifier_is_refused_while_one_is_active, backbone=bb)


# ------------------------------------------------------------------------------------------------ helpers
def snapshot(backbone) -> dict[str, tuple]:
    """Every parameter and buffer of ``backbone.model``: (copy of the values, the object, requires_grad)."""
    model = backbone.model
    out: dict[str, tuple] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        out[name] = (p.detach().clone(), p, p.requires_grad)
    for name, b in model.named_buffers(remove_duplicate=False):
        out[name] = (b.detach().clone(), b, False)
    return out


def changed(before: dict[str, tuple], backbone) -> set[str]:
    """Names whose values, dtype or device differ from ``before`` (shapes and objects are asserted equal)."""
    now = snapshot(backbone)
    assert now.keys() == before.keys(), f"parameters added or removed: {sorted(now.keys() ^ before.keys())}"
    out = set()
    for name, (value, obj, grad) in before.items():
        v2, obj2, grad2 = now[name]
        assert obj2 is obj, f"{name}: the parameter object was replaced (write into it instead)"
        assert grad2 == grad, f"{name}: requires_grad changed"
        assert v2.shape == value.shape, f"{name}: shape {tuple(value.shape)} -> {tuple(v2.shape)}"
        if v2.dtype != value.dtype or v2.device != value.device or not torch.equal(v2, value):
            out.add(name)
    return out


def assert_unchanged(before: dict[str, tuple], backbone, what: str) -> None:
    diff = changed(before, backbone)
    assert not diff, f"{what}: {len(diff)} tensor(s) differ, e.g. {sorted(diff)[:5]}"


def plan_json(backbone) -> tuple[dict[str, Any], set[str]]:
    """A non-empty plan for ``backbone`` and the names of the parameters its active entries touch.

    Active: ``W_up`` of the bottom and top block of each tower, ``W_q`` of the first target, the first ``W_p``;
    one ratio-0 entry (``W_down`` of the first block), which must change nothing.
    """
    types = set(backbone.weight_types())
    entries: list[dict[str, Any]] = []
    touched: set[str] = set()

    def add(t, ratio: float) -> None:
        entries.append({"tower": t.tower, "weight_type": t.weight_type, "layer": t.layer, "ratio": ratio})
        if ratio > 0:
            touched.add(t.name)

    ups = backbone.target_modules("W_up")
    for tower in dict.fromkeys(t.tower for t in ups):
        mine = [t for t in ups if t.tower == tower]
        for i in sorted({0, len(mine) - 1}):
            add(mine[i], RATIO_UP)
    if "W_q" in types:
        add(backbone.target_modules("W_q")[0], RATIO_Q)
    if "W_p" in types:
        add(backbone.target_modules("W_p")[0], RATIO_P)
    if "W_down" in types:
        add(backbone.target_modules("W_down")[0], 0.0)
    return {"entries": entries, "prune": "minor"}, touched


def _plan(cls: type, data: dict[str, Any]):
    return plan_reader(cls)(json.loads(json.dumps(data)))


def _empty_plans(cls: type, backbone) -> list[Any]:
    reader = plan_reader(cls)
    if reader is None:
        return [None]
    data, _ = plan_json(backbone)
    zero = [dict(e, ratio=0.0) for e in data["entries"]]
    return [reader({"entries": [], "prune": "minor"}), reader({"entries": zero, "prune": "minor"})]


# ------------------------------------------------------------------------------------------------- checks
def check_interface(cls: type) -> None:
    """Built without arguments; ``apply`` / ``restore`` callable; ``plan_hash`` is ``"none"`` before any apply."""
    mod = cls()
    assert callable(getattr(mod, "apply", None)) and callable(getattr(mod, "restore", None)), \
        "a modifier needs apply(backbone, plan) and restore()"
    assert mod.plan_hash == NONE_HASH, f"plan_hash before any apply must be '{NONE_HASH}', got {mod.plan_hash!r}"
    reader = plan_reader(cls)
    assert reader is None or callable(reader), "plan_from_dict must be callable"


def check_restore_without_apply_is_a_no_op(cls: type, backbone: str = TINY_CLIP) -> None:
    """``restore()`` on a modifier that applied nothing changes nothing (twice, too)."""
    bb = tiny_backbone(backbone)
    before = snapshot(bb)
    mod = cls()
    mod.restore()
    mod.restore()
    assert_unchanged(before, bb, "restore() without apply()")
    assert mod.plan_hash == NONE_HASH


def check_empty_plan_is_a_no_op(cls: type, backbone: str = TINY_CLIP) -> None:
    """The empty plan (no entries; only ratio-0 entries) changes no tensor and hashes to ``"none"``."""
    bb = tiny_backbone(backbone)
    before = snapshot(bb)
    for plan in _empty_plans(cls, bb):
        mod = cls()
        assert mod.apply(bb, plan) is mod, "apply must return the modifier"
        assert_unchanged(before, bb, f"apply of an empty plan ({plan!r})")
        assert mod.plan_hash == NONE_HASH, f"an empty plan must hash to '{NONE_HASH}', got {mod.plan_hash!r}"
        mod.apply(bb, plan)
        assert_unchanged(before, bb, "a second apply of an empty plan")
        mod.restore()
        assert_unchanged(before, bb, "restore after an empty plan")
        assert mod.plan_hash == NONE_HASH


def check_apply_then_restore_is_bit_exact(cls: type, backbone: str = TINY_CLIP) -> None:
    """Apply changes exactly the planned parameters; restore brings back every tensor bit-exactly."""
    bb = tiny_backbone(backbone)
    data, touched = plan_json(bb)
    before = snapshot(bb)
    mod = cls()
    assert mod.apply(bb, _plan(cls, data)) is mod, "apply must return the modifier"
    diff = changed(before, bb)
    assert diff == touched, (f"apply changed {sorted(diff - touched)} beyond the plan and left "
                             f"{sorted(touched - diff)} of the plan untouched")
    assert isinstance(mod.plan_hash, str) and mod.plan_hash != NONE_HASH, f"plan_hash {mod.plan_hash!r}"
    mod.restore()
    assert_unchanged(before, bb, "restore()")
    assert mod.plan_hash == NONE_HASH, "plan_hash after restore must be 'none'"
    mod.restore()
    assert_unchanged(before, bb, "a second restore()")


def check_applying_twice_equals_applying_once(cls: type, backbone: str = TINY_CLIP) -> None:
    """A second apply of the same plan (same object) gives the weights of the first; so does a fresh modifier."""
    bb = tiny_backbone(backbone)
    data, _ = plan_json(bb)
    pristine = snapshot(bb)
    mod = cls().apply(bb, _plan(cls, data))
    once = snapshot(bb)
    hash_once = mod.plan_hash
    mod.apply(bb, _plan(cls, data))
    assert_unchanged(once, bb, "applying the plan a second time")
    assert mod.plan_hash == hash_once
    mod.restore()
    assert_unchanged(pristine, bb, "restore after two applies")
    other = cls().apply(bb, _plan(cls, data))
    assert_unchanged(once, bb, "a fresh modifier applying the same plan")
    other.restore()
    assert_unchanged(pristine, bb, "restore of the fresh modifier")


def check_plan_hash_stability(cls: type, backbone: str = TINY_CLIP) -> None:
    """Same plan -> same hash across a JSON round trip and any entry order; a changed ratio -> another hash."""
    bb = tiny_backbone(backbone)
    data, _ = plan_json(bb)
    mod = cls()

    def applied(d: dict[str, Any]) -> tuple[str, dict[str, tuple]]:
        mod.apply(bb, _plan(cls, d))
        return mod.plan_hash, snapshot(bb)

    first, weights = applied(data)
    plan = _plan(cls, data)
    if hasattr(plan, "to_dict"):  # the plan's own JSON form
        again = plan_reader(cls)(json.loads(json.dumps(plan.to_dict())))
        mod.apply(bb, again)
        assert mod.plan_hash == first, "the plan's to_dict() JSON round trip changed its hash"
    reordered = dict(data, entries=list(reversed(data["entries"])))
    h, _ = applied(reordered)
    assert h == first, "the order of the entries changed the plan hash"
    assert_unchanged(weights, bb, "the same plan with its entries reordered")
    entries = [dict(e) for e in data["entries"]]
    i = next(i for i, e in enumerate(entries) if e["ratio"] > 0)
    entries[i]["ratio"] = RATIO_CHANGED
    h_changed, _ = applied(dict(data, entries=entries))
    assert h_changed != first, "a changed ratio must change the plan hash"
    h_back, _ = applied(data)
    assert h_back == first, "the hash of a plan must not depend on what was applied before"
    mod.restore()


def check_second_modifier_is_refused_while_one_is_active(cls: type, backbone: str = TINY_CLIP) -> None:
    """While one modifier is applied, another one's apply raises UserError and changes nothing."""
    bb = tiny_backbone(backbone)
    data, _ = plan_json(bb)
    pristine = snapshot(bb)
    first = cls().apply(bb, _plan(cls, data))
    applied = snapshot(bb)
    second = cls()
    with pytest.raises(UserError):
        second.apply(bb, _plan(cls, data))
    assert_unchanged(applied, bb, "a refused apply")
    first.restore()
    assert_unchanged(pristine, bb, "restore of the first modifier")
    second.apply(bb, _plan(cls, data))
    assert_unchanged(applied, bb, "the second modifier, once the first is restored")
    second.restore()
    assert_unchanged(pristine, bb, "restore of the second modifier")
