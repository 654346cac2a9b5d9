"""The registered ``setar`` modifier: selective low-rank approximation of weights, reversibly.

Paper: Li et al., SeTAR, NeurIPS 2024, Sec. 3.1 (Eq. 5). Original code: X1AOX1A/SeTAR
``src/svd_ood/svd_ood/model_hub.py`` (``apply_svd_prune``) and ``src/peft/peft/tuners/modified_lora/model.py``
(``svd_init``). Differences: the SVD of each pristine weight is computed once and cached (the official code
reloads the model and recomputes it for every evaluation — same numbers, see spec §4.4), and restoring writes
the kept pristine tensors back, so it is bit-exact.

Usage::

    mod = get("modifiers", "setar")()
    mod.apply(backbone, plan)     # weights of plan.active replaced in place
    ...                           # extract features
    mod.restore()                 # every touched weight bit-identical to before
"""

from __future__ import annotations

import logging

import torch

from oodbench.backbones.base import Backbone, TargetWeight
from oodbench.errors import IncompatibleError, UserError
from oodbench.registry import register

from .lowrank import SVDFactors, removed_factors, removed_rank, truncated_weight
from .plan import NONE_HASH, Plan

logger = logging.getLogger("oodbench")

_ACTIVE_ATTR = "_oodbench_active_modifier"


def find_target(backbone: Backbone, tower: str, weight_type: str, layer: int) -> TargetWeight:
    """The :class:`TargetWeight` of ``(tower, weight_type, layer)``; a one-line error lists what exists."""
    try:
        targets = backbone.target_modules(weight_type, tower)
    except (KeyError, ValueError, NotImplementedError) as exc:
        raise IncompatibleError(f"backbone {backbone.name} has no {weight_type} weights in tower '{tower}': {exc}") from None
    for t in targets:
        if t.layer == layer:
            return t
    layers = ", ".join(str(t.layer) for t in targets) or "none"
    raise IncompatibleError(f"backbone {backbone.name}: no {tower} {weight_type} at layer {layer} (layers: {layers})")


@register("modifiers", "setar")
class SetarModifier:
    """Replaces weights by low-rank approximations of their pristine values, reversibly.

    Holds, per :attr:`TargetWeight.key`, the pristine tensor (a clone in the parameter's dtype) and its SVD
    factors (float32, on the parameter's device), both taken the first time the weight is touched. One modifier
    may be active on a backbone at a time.

    Args:
        cache_svd: keep SVD factors between calls (default). ``False`` recomputes them each time.
    """

    plan_from_dict = staticmethod(Plan.from_dict)  # JSON form -> plan (what oodbench.testing builds plans with)

    def __init__(self, cache_svd: bool = True):
        self.cache_svd = cache_svd
        self.backbone: Backbone | None = None
        self.plan: Plan | None = None
        self._pristine: dict[str, torch.Tensor] = {}
        self._svd: dict[str, SVDFactors] = {}
        self._touched: dict[str, TargetWeight] = {}

    # ------------------------------------------------------------------------------------ plan level
    def apply(self, backbone: Backbone, plan: Plan) -> "SetarModifier":
        """Restore whatever this modifier changed, then apply every active entry of ``plan``."""
        self.restore()
        self._attach(backbone)
        for e in plan.active:
            target = find_target(backbone, e.tower, e.weight_type, e.layer)
            self.set_ratio(target, e.ratio, plan.prune, plan.seed)
        self.plan = plan
        logger.debug("setar: applied plan %s (%s)", plan.hash(), plan.describe())
        return self

    def restore(self) -> None:
        """Write every touched weight back, bit-identical to the pristine tensor."""
        for key, target in list(self._touched.items()):
            target.set(self._pristine[key])
        self._touched.clear()
        self.plan = None
        if self.backbone is not None and getattr(self.backbone, _ACTIVE_ATTR, None) is self:
            delattr(self.backbone, _ACTIVE_ATTR)

    @property
    def plan_hash(self) -> str:
        return self.plan.hash() if self.plan is not None else NONE_HASH

    # ---------------------------------------------------------------------------------- weight level
    def set_ratio(self, target: TargetWeight, ratio: float, prune: str = "minor", seed: int = 0) -> int:
        """Set one weight to its low-rank approximation; ``ratio`` whose removed rank is 0 restores it.

        Returns:
            The number of removed components.
        """
        self._attach_target(target)
        factors = self.factors(target)
        removed = removed_rank(factors.full_rank, ratio)
        if removed == 0:
            self.reset(target)
            return 0
        target.set(truncated_weight(factors, removed, prune, seed))
        self._touched[target.key] = target
        return removed

    def reset(self, target: TargetWeight) -> None:
        """Put one weight back to its pristine value (no-op when untouched)."""
        if target.key in self._touched:
            target.set(self._pristine[target.key])
            del self._touched[target.key]

    def pristine(self, target: TargetWeight) -> torch.Tensor:
        """The pristine ``[out, in]`` tensor of ``target`` (recorded on first touch)."""
        self._attach_target(target)
        return self._pristine[target.key]

    def factors(self, target: TargetWeight) -> SVDFactors:
        """SVD factors of the pristine weight (cached unless ``cache_svd=False``), on the parameter's device."""
        self._attach_target(target)
        f = self._svd.get(target.key)
        if f is None:
            f = SVDFactors.of(self._pristine[target.key])
            if self.cache_svd:
                self._svd[target.key] = f
        if f.U.device != target.param.device:
            f = f.to(target.param.device)
            if self.cache_svd:
                self._svd[target.key] = f
        return f

    def has_factors(self, target: TargetWeight) -> bool:
        """Whether the SVD factors of ``target`` are cached."""
        return target.key in self._svd

    def adopt_factors(self, target: TargetWeight, factors: SVDFactors) -> None:
        """Cache ``factors`` as the SVD of ``target``'s pristine weight (computed elsewhere, e.g. by another process
        of a divided search from the same weights); the pristine weight is recorded as on a first touch."""
        self._attach_target(target)
        self._svd[target.key] = factors

    def minor_factors(self, target: TargetWeight, ratio: float, prune: str = "minor", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B [out, r], A [r, in])`` of the components ``ratio`` removes; ``W' + B @ A = W`` (SeTAR+FT)."""
        factors = self.factors(target)
        return removed_factors(factors, removed_rank(factors.full_rank, ratio), prune, seed)

    # ------------------------------------------------------------------------------------- internals
    def _attach(self, backbone: Backbone) -> None:
        other = getattr(backbone, _ACTIVE_ATTR, None)
        if other is not None and other is not self:
            raise UserError(f"backbone {backbone.name} is already modified by another modifier; call its restore() first")
        if self.backbone is not None and self.backbone is not backbone:
            self.restore()
            self._pristine.clear()
            self._svd.clear()
        self.backbone = backbone
        setattr(backbone, _ACTIVE_ATTR, self)

    def _attach_target(self, target: TargetWeight) -> None:
        if self.backbone is None:
            raise UserError("SetarModifier: call apply(backbone, plan) (or attach) before touching weights")
        if target.key not in self._pristine:
            self._pristine[target.key] = target.get().clone()

    def attach(self, backbone: Backbone) -> "SetarModifier":
        """Bind to ``backbone`` without changing any weight (for callers that set ratios one by one)."""
        self._attach(backbone)
        return self
