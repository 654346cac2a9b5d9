"""The low-rank operation of SeTAR: ratio -> removed rank, SVD factors, truncation, removed minor factors.

Paper: Li et al., "SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation", NeurIPS 2024,
Eq. 5-6. Original code: X1AOX1A/SeTAR, ``src/svd_ood/svd_ood/model_hub.py`` (ratio -> rank) and
``src/peft/peft/tuners/modified_lora/model.py`` (``svd_init``: split, rebuild ``U0 diag(S0) V0^T``).

Everything here is pure tensor code: a weight is a 2-D ``[out, in]`` matrix (an ``nn.Linear`` weight, a
transposed projection or a conv kernel viewed as ``[out, in*kh*kw]``; see
:class:`oodbench.backbones.base.TargetWeight`). Factors are computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oodbench.errors import UserError
from oodbench.threads import one_thread

from .config import PRUNE_STRATEGIES  # noqa: F401  (defined in the torch-free settings module)


def removed_rank(full_rank: int, ratio: float) -> int:
    """Number of singular components SeTAR removes from a matrix of nominal rank ``full_rank``.

    ``ratio`` in ``(0, 1)`` is a fraction: ``round(full_rank * ratio)`` with Python's ``round`` (banker's
    rounding on the float product), exactly as the official code. ``ratio >= 1`` is an absolute rank
    (it must be a whole number). ``ratio == 0`` removes nothing.

    Examples: ``removed_rank(768, 0.15) == 115``, ``removed_rank(512, 0.05) == 26``,
    ``removed_rank(1024, 0.4) == 410``.

    Raises:
        UserError: negative ratio, a non-integral absolute rank, or removing every component.
    """
    if ratio < 0:
        raise UserError(f"rank reduction ratio must be >= 0, got {ratio}")
    if ratio == 0:
        return 0
    if ratio >= 1:
        if float(ratio) != int(ratio):
            raise UserError(f"a ratio >= 1 is an absolute rank and must be a whole number, got {ratio}")
        removed = int(ratio)
    else:
        removed = round(full_rank * ratio)
    if removed >= full_rank:
        raise UserError(f"ratio {ratio} removes {removed} of {full_rank} components; at least one must be kept")
    return removed


def kept_rank(full_rank: int, ratio: float) -> int:
    """``full_rank - removed_rank(full_rank, ratio)`` (the code's form, not ``round((1 - ratio) * full)``)."""
    return full_rank - removed_rank(full_rank, ratio)


@dataclass(frozen=True)
class SVDFactors:
    """Thin SVD ``W = U diag(S) Vh`` of one pristine weight.

    Attributes:
        U: ``[out, k]`` left singular vectors, ``k = min(out, in)``.
        S: ``[k]`` singular values, descending.
        Vh: ``[k, in]`` right singular vectors (transposed).
    """

    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor

    @property
    def full_rank(self) -> int:
        return int(self.S.shape[0])

    @classmethod
    def of(cls, weight: torch.Tensor) -> "SVDFactors":
        """``torch.linalg.svd(weight.float(), full_matrices=False)`` on the weight's device.

        On the CPU the SVD runs with one thread (:func:`oodbench.threads.one_thread`): MKL's threaded LAPACK gives
        factors that differ in the last bits with the thread count, and a truncated weight with them, which can
        move a search step or a score across a threshold. One thread makes them the same on any machine of one
        CPU kind (and equal to what a one-thread run always computed).
        """
        with one_thread(weight.device):
            U, S, Vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
        return cls(U, S, Vh)

    def to(self, device: torch.device | str) -> "SVDFactors":
        return SVDFactors(self.U.to(device), self.S.to(device), self.Vh.to(device))


def split_components(full_rank: int, removed: int, prune: str = "minor", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the kept and the removed singular components.

    Args:
        full_rank: number of components ``k``.
        removed: how many to remove (``0 <= removed < k``).
        prune: ``"minor"`` removes the ``removed`` smallest singular values (SeTAR), ``"principal"`` the largest,
            ``"random"`` a random subset drawn with ``torch.randperm`` from a generator seeded with ``seed``
            (the official code draws from the global RNG; a private generator makes the choice independent of
            which other weights are modified and in which order).
        seed: seed of the random choice (ignored otherwise).

    Returns:
        ``(kept [k - removed], removed [removed])`` int64 index tensors on the CPU. For ``minor`` and ``principal``
        both are ascending; for ``random`` they follow the permutation, as in the official code.
    """
    if prune not in PRUNE_STRATEGIES:
        raise UserError(f"unknown prune strategy '{prune}'; choose one of {', '.join(PRUNE_STRATEGIES)}")
    if not 0 <= removed < full_rank:
        raise UserError(f"cannot remove {removed} of {full_rank} singular components")
    order = torch.arange(full_rank)
    if prune == "minor":
        return order[: full_rank - removed], order[full_rank - removed :]
    if prune == "principal":
        return order[removed:], order[:removed]
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(full_rank, generator=gen)
    return perm[removed:], perm[:removed]


def truncated_weight(factors: SVDFactors, removed: int, prune: str = "minor", seed: int = 0) -> torch.Tensor:
    """``W' = U0 diag(S0) V0^T`` rebuilt from the kept factors, float32 ``[out, in]``.

    ``removed == 0`` still rebuilds from all factors (callers leave such weights untouched, as the official
    code skips rank-0 modules).
    """
    kept, _ = split_components(factors.full_rank, removed, prune, seed)
    if prune == "minor":  # contiguous: slicing avoids gathers
        k = factors.full_rank - removed
        U0, S0, Vh0 = factors.U[:, :k], factors.S[:k], factors.Vh[:k]
    else:
        kept = kept.to(factors.S.device)
        U0, S0, Vh0 = factors.U[:, kept], factors.S[kept], factors.Vh[kept]
    return (U0 * S0) @ Vh0


def removed_factors(factors: SVDFactors, removed: int, prune: str = "minor", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The removed components as LoRA-style factors (SeTAR+FT, Eq. 6): ``B = U1 diag(sqrt S1)`` ``[out, r]`` and
    ``A = diag(sqrt S1) V1^T`` ``[r, in]``, so that ``truncated_weight(...) + B @ A`` equals the original weight."""
    _, rem = split_components(factors.full_rank, removed, prune, seed)
    rem = rem.to(factors.S.device)
    root = factors.S[rem].sqrt()
    B = factors.U[:, rem] * root
    A = root[:, None] * factors.Vh[rem]
    return B, A
