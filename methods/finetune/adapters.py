"""Trainable low-rank terms on backbone weights: SeTAR+FT (minor singular components) and the LoRA baseline.

Papers: Li et al., SeTAR, NeurIPS 2024, Sec. 3.2 (Eq. 6-8); Hu et al., "LoRA: Low-Rank Adaptation of Large
Language Models", ICLR 2022. Original code: X1AOX1A/SeTAR ``finetune.py`` and the vendored
``src/peft/peft/tuners/modified_lora/model.py`` (``svd_init``; ``disable_lora_scaling`` sets the scaling to 1).

A weight ``W`` (seen as ``[out, in]``, :class:`~oodbench.backbones.base.TargetWeight`) becomes
``base + scaling * B @ A`` with ``base`` frozen and ``B [out, r]``, ``A [r, in]`` trainable:

* **SeTAR+FT** (:func:`setar_ft_adapters`): for every active entry of a SeTAR plan, ``base = W'`` (the kept
  principal components, rebuilt from the SVD as the official code does), ``B = U1 sqrt(S1)``,
  ``A = sqrt(S1) V1^T`` (the removed minor components), scaling 1, so the model at step 0 is the original one;
* **LoRA** (:func:`lora_adapters`): ``base = W``, ``B = 0``, ``A`` Kaiming-uniform (``a = sqrt(5)``, the
  ``nn.Linear`` / peft default), scaling ``alpha / r``.

The term is a ``torch.nn.utils.parametrize`` parametrization of the parameter that holds ``W``: modules keep
their class and call path (open_clip's packed ``attn.in_proj_weight`` rows, a transposed projection and conv
kernels work the same way as an ``nn.Linear`` weight), and the backbone's layer-wise forward runs unchanged.
peft is not used: its adapters replace ``nn.Linear`` modules by name (not the packed or transposed weights the
backbones address), and it has no minor-component initialisation (its PiSSA init takes the *principal* ones),
so it would still need the base weights and both factors overwritten by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from oodbench.backbones.base import Backbone, TargetWeight
from oodbench.errors import UserError


class LowRankTerm(nn.Module):
    """``scaling * B @ A`` placed into a parameter's layout (rows of a packed weight, transposed, conv kernel).

    Attributes:
        B: ``[out, r]`` trainable.
        A: ``[r, in]`` trainable.
        scaling: constant factor.
        key: the :attr:`TargetWeight.key` of the weight it adapts.
    """

    def __init__(self, target: TargetWeight, B: torch.Tensor, A: torch.Tensor, scaling: float = 1.0):
        super().__init__()
        out_f, in_f = target.shape
        if tuple(B.shape) != (out_f, A.shape[0]) or tuple(A.shape) != (B.shape[1], in_f):
            raise ValueError(f"{target.key}: factors B {tuple(B.shape)} @ A {tuple(A.shape)} do not give {(out_f, in_f)}")
        dtype, device = target.param.dtype, target.param.device
        self.B = nn.Parameter(B.detach().to(device=device, dtype=dtype).clone())
        self.A = nn.Parameter(A.detach().to(device=device, dtype=dtype).clone())
        self.scaling = float(scaling)
        self.key = target.key
        self.tower = target.tower
        self.rows = target.rows
        self.transpose = target.transpose
        self.kernel_shape = target.kernel_shape

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    def delta(self) -> torch.Tensor:
        """``scaling * B @ A`` as ``[out, in]``."""
        d = self.B @ self.A
        return d if self.scaling == 1.0 else d * self.scaling

    def placed(self, like: torch.Tensor) -> torch.Tensor:
        """The delta in the layout of the whole parameter ``like`` (zeros outside a row slice)."""
        d = self.delta()
        if self.transpose:
            d = d.t()
        if self.rows is not None:
            rest = like.shape[1:] if self.kernel_shape is None else (int(math.prod(like.shape[1:])),)
            start, stop = self.rows.start or 0, self.rows.stop
            d = torch.cat([d.new_zeros(start, *rest), d, d.new_zeros(like.shape[0] - stop, *rest)])
        if self.kernel_shape is not None:
            d = d.reshape(like.shape)
        return d


class ParamDelta(nn.Module):
    """Parametrization ``W -> W + sum of its low-rank terms`` of one parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.terms = nn.ModuleList()

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        out = W
        for term in self.terms:
            out = out + term.placed(W).to(W.dtype)
        return out


@dataclass
class _Slot:
    module: nn.Module
    attr: str
    delta: ParamDelta


class AdapterSet:
    """Low-rank terms attached to one backbone's parameters, with everything else frozen.

    Usage::

        adapters = AdapterSet(backbone)
        adapters.add(target, B, A, scaling=1.0, base=W_prime)   # base: optional new frozen weight
        ...train adapters.parameters()...
        merged = adapters.merged()        # {parameter name: merged tensor}
        adapters.remove()                 # parametrizations gone, every touched weight back to its pristine value

    The pristine value of each touched parameter and the ``requires_grad`` flags of the model are recorded at the
    first change and restored by :meth:`remove`, bit for bit.
    """

    def __init__(self, backbone: Backbone):
        self.backbone = backbone
        self.model = backbone.model
        self.terms: dict[str, LowRankTerm] = {}
        self._slots: dict[str, _Slot] = {}  # parameter name -> where its parametrization lives
        self._pristine: dict[str, torch.Tensor] = {}
        self._grad_flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)

    # --------------------------------------------------------------------------------------- build
    def add(self, target: TargetWeight, B: torch.Tensor, A: torch.Tensor, scaling: float = 1.0,
            base: torch.Tensor | None = None) -> LowRankTerm:
        """Attach ``scaling * B @ A`` to ``target``; ``base`` (``[out, in]``) first replaces the frozen weight."""
        if target.key in self.terms:
            raise UserError(f"{target.key} already has a low-rank adapter")
        pname = target.name
        slot = self._slots.get(pname)
        if slot is None:
            self._pristine[pname] = target.param.detach().clone()
        if base is not None:
            target.set(base)  # target.param is the parametrization's original: the frozen base
        if slot is None:
            module_name, _, attr = pname.rpartition(".")
            module = self.model.get_submodule(module_name) if module_name else self.model
            slot = _Slot(module, attr, ParamDelta())
            parametrize.register_parametrization(module, attr, slot.delta, unsafe=True)
            self._slots[pname] = slot
        term = LowRankTerm(target, B, A, scaling)
        slot.delta.terms.append(term)
        self.terms[target.key] = term
        return term

    # ------------------------------------------------------------------------------------- access
    def parameters(self) -> list[nn.Parameter]:
        """The trainable factors, in a fixed order (B then A of each term, terms in insertion order)."""
        return [p for t in self.terms.values() for p in (t.B, t.A)]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def ranks(self) -> dict[str, int]:
        return {k: t.rank for k, t in self.terms.items()}

    def towers(self) -> set[str]:
        """Towers with at least one adapted weight."""
        return {t.tower for t in self.terms.values()}

    def state(self) -> dict[str, torch.Tensor]:
        """``{"<key>.B": ..., "<key>.A": ...}`` (detached CPU copies)."""
        out = {}
        for k, t in self.terms.items():
            out[f"{k}.B"] = t.B.detach().cpu().clone()
            out[f"{k}.A"] = t.A.detach().cpu().clone()
        return out

    @torch.no_grad()
    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Copy factors saved by :meth:`state` back (the same terms must exist)."""
        for k, t in self.terms.items():
            for name in ("B", "A"):
                saved = state.get(f"{k}.{name}")
                if saved is None or tuple(saved.shape) != tuple(getattr(t, name).shape):
                    raise UserError(f"adapter checkpoint does not match: {k}.{name}")
                getattr(t, name).copy_(saved)

    @torch.no_grad()
    def merged(self) -> dict[str, torch.Tensor]:
        """``{parameter name: base + sum of terms}`` of every adapted parameter (detached clones, the param's dtype)."""
        return {name: getattr(s.module, s.attr).detach().clone() for name, s in self._slots.items()}

    # ------------------------------------------------------------------------------------ teardown
    @torch.no_grad()
    def remove(self) -> None:
        """Remove every parametrization and write the pristine weights back; restore ``requires_grad`` flags."""
        for name, slot in list(self._slots.items()):
            parametrize.remove_parametrizations(slot.module, slot.attr, leave_parametrized=False)
            getattr(slot.module, slot.attr).copy_(self._pristine[name])
        self._slots.clear()
        self.terms.clear()
        for n, p in self.model.named_parameters():
            p.requires_grad_(self._grad_flags.get(n, p.requires_grad))

    def __enter__(self) -> "AdapterSet":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# ------------------------------------------------------------------------------------------ builders
def setar_ft_adapters(backbone: Backbone, plan, adapters: AdapterSet | None = None) -> AdapterSet:
    """SeTAR+FT: every active entry of ``plan`` becomes frozen ``W'`` + trainable minor components (scaling 1).

    Uses :class:`~oodbench.methods.setar.SetarModifier` for the pristine weight's SVD and the minor factors
    (the same code as the training-free modifier), and writes ``W'`` as the frozen base.
    """
    from oodbench.methods.setar import SetarModifier, find_target
    from oodbench.methods.setar.lowrank import removed_rank, truncated_weight

    targets = [(e, find_target(backbone, e.tower, e.weight_type, e.layer)) for e in plan.active]  # before any change
    adapters = adapters or AdapterSet(backbone)
    svd = SetarModifier(cache_svd=False).attach(backbone)
    try:
        for e, target in targets:
            factors = svd.factors(target)
            removed = removed_rank(factors.full_rank, e.ratio)
            B, A = svd.minor_factors(target, e.ratio, plan.prune, plan.seed)
            base = truncated_weight(factors, removed, plan.prune, plan.seed)
            adapters.add(target, B, A, scaling=1.0, base=base)
    finally:
        svd.restore()  # it changed no weight itself; this releases the backbone
    return adapters


def lora_adapters(backbone: Backbone, weight_type: str, rank: int, alpha: float, towers: tuple[str, ...] | None = None,
                  seed: int = 0, adapters: AdapterSet | None = None) -> AdapterSet:
    """LoRA on every ``weight_type`` weight of ``towers`` (None: every tower): ``B = 0``, ``A`` Kaiming-uniform,
    scaling ``alpha / rank``. ``A`` is drawn from a generator seeded with ``seed``, weight by weight in order."""
    if rank < 1:
        raise UserError(f"LoRA rank must be >= 1, got {rank}")
    targets = [t for tower in towers or tuple(backbone.towers()) for t in backbone.target_modules(weight_type, tower)]
    for target in targets:
        if rank > min(target.shape):
            raise UserError(f"LoRA rank {rank} exceeds the size of {target.key} {target.shape}")
    adapters = adapters or AdapterSet(backbone)
    gen = torch.Generator().manual_seed(int(seed))
    for target in targets:
        out_f, in_f = target.shape
        adapters.add(target, torch.zeros(out_f, rank), kaiming_uniform((rank, in_f), gen), scaling=alpha / rank)
    return adapters


def kaiming_uniform(shape: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """``nn.init.kaiming_uniform_(w, a=sqrt(5))`` (bound ``1 / sqrt(fan_in)``), drawn from ``gen``."""
    bound = 1.0 / math.sqrt(shape[1])
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound
