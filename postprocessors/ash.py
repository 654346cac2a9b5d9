"""ASH: Activation SHaping (ASH-P, ASH-B, ASH-S).

Paper: Djurisic et al., "Extremely Simple Activation Shaping for Out-of-Distribution Detection", ICLR 2023.
Code: andrijazz/ash, ``ash.py`` (``ash_p``, ``ash_b``, ``ash_s``) with the ImageNet ResNet-50 placement of
``models/resnet_imagenet.py`` (after ``avgpool``); OpenOOD ``openood/networks/ash_net.py`` (ASH-B only).

The shaping acts on the pooled penultimate feature h [F] seen as a [F, 1, 1] activation (n = F entries).
With ``k = n − round(n · p / 100)`` (numpy round, half to even, as the reference), keep the k largest entries
of each sample and zero the rest; then

* ASH-P: keep the kept values as they are;
* ASH-B: set every kept entry to ``s1 / k``, where ``s1 = Σ_j h_j`` is the sum *before* pruning;
* ASH-S: multiply the kept values by ``exp(s1 / s2)``, where ``s2`` is the sum *after* pruning.

Score (higher = ID): ``logsumexp(W · ASH(h) + b)`` (energy at T = 1). p = 90 for all three (ASH-S@90 is the
paper's ImageNet ResNet-50 default, ``method: ash_s@90``); APS grid [65, 70, 75, 80, 85, 90, 95]
(OpenOOD ``configs/postprocessors/ash.yml``). Three registered names: ``ash_p``, ``ash_b``, ``ash_s``.

Differences from the reference, all invisible on real-valued features:

* the reference shapes in place; here the input is copied, so cached features never change;
* ties at the k-th value are broken toward the lower feature index (``torch.topk`` leaves it unspecified), so
  the result does not depend on the batch;
* ASH-S with ``s2 = 0`` (nothing positive kept) leaves the kept values unscaled instead of producing NaN;
* the shaping runs in float64.

Activation shaping assumes non-negative (post-ReLU) CNN features; on ViT/Swin features OpenOOD's leaderboard
shows it near chance.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, check_in_range, linear_energy, row_chunks
from oodbench.registry import register

VARIANTS = ("p", "b", "s")


def ash_keep_count(n: int, percentile: float) -> int:
    """Entries kept per sample: ``n − round(n · p / 100)`` with numpy's round-half-to-even."""
    return n - int(np.round(n * percentile / 100.0))


def top_k_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k largest entries of each row; ties at the k-th value go to the lower index.

    Args:
        x: ``[N, n]``; k: 1 <= k <= n.
    Returns:
        ``[N, n]`` bool with exactly k True per row.
    """
    n = x.shape[1]
    kth = np.partition(x, n - k, axis=1)[:, n - k][:, None]  # the k-th largest value of each row
    greater = x > kth
    need = k - greater.sum(axis=1, keepdims=True)
    equal = x == kth
    return greater | (equal & (np.cumsum(equal, axis=1) <= need))


def ash(h: np.ndarray, percentile: float, variant: str) -> np.ndarray:
    """Activation shaping of pooled features; returns a new float64 array, ``h`` is not modified.

    Args:
        h: ``[N, F]`` pooled penultimate features.
        percentile: p in [0, 100): the share of entries pruned.
        variant: ``"p"``, ``"b"`` or ``"s"``.
    Returns:
        ``[N, F]`` float64 shaped features.
    """
    if variant not in VARIANTS:
        raise ValueError(f"ASH variant must be one of {VARIANTS}, got {variant!r}")
    x = np.array(h, dtype=np.float64)  # always a copy
    n = x.shape[1]
    k = ash_keep_count(n, percentile)
    if k < 1:
        raise UserError(f"ash_{variant}: percentile={percentile} prunes all {n} activations; use a smaller percentile")
    keep = top_k_mask(x, k)
    s1 = x.sum(axis=1, keepdims=True)
    if variant == "b":
        return np.where(keep, s1 / k, 0.0)
    x[~keep] = 0.0
    if variant == "s":
        s2 = x.sum(axis=1, keepdims=True)
        ratio = np.divide(s1, s2, out=np.zeros_like(s1), where=s2 != 0)
        x *= np.exp(ratio)
    return x


def ash_score(penultimate: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, percentile: float,
              variant: str) -> np.ndarray:
    """``logsumexp(W · ASH(h) + b)``, float64 ``[N]``.

    Args:
        penultimate: ``[N, F]`` (not modified); weight: ``[C, F]``; bias: ``[C]``.
    """
    h = np.asarray(penultimate)
    out = np.empty(len(h), dtype=np.float64)
    for sl in row_chunks(len(h), max(h.shape[1], np.shape(weight)[0])):
        out[sl] = linear_energy(ash(h[sl], percentile, variant), weight, bias)
    return out


class _ASH(Postprocessor):
    """Common body of the three ASH variants (not registered itself)."""

    variant: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"penultimate", "fc_weight", "fc_bias"})
    search_space: ClassVar[dict[str, list]] = {"percentile": [65, 70, 75, 80, 85, 90, 95]}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = "Djurisic et al., Extremely Simple Activation Shaping for OOD Detection, ICLR 2023"

    def __init__(self, percentile: float = 90):
        self.percentile = percentile

    def feature_warnings(self, features: Features) -> list[str]:
        """ASH prunes the *smallest* activations assuming they are non-negative (after a ReLU). On signed features
        (LayerNorm outputs of ViT / Swin) pruning to zero keeps an arbitrary subset, and ASH-B/S scores collapse."""
        h = np.asarray(features["penultimate"])
        frac = float((h < 0).mean()) if h.size else 0.0
        if frac > 0.01:
            return [f"{self.title()} assumes non-negative (post-ReLU) penultimate features; {100 * frac:.0f}% of "
                    f"these are negative, so its scores carry little meaning here (ASH is meant for CNNs)"]
        return []

    def score(self, features: Features) -> np.ndarray:
        check_in_range(f"ash_{self.variant}", "percentile", self.percentile, 0, 100)
        return ash_score(as_2d(features, "penultimate"), features["fc_weight"], features["fc_bias"],
                         self.percentile, self.variant)


@register("postprocessors", "ash_p")
class ASHP(_ASH):
    """ASH-P (Djurisic et al., ICLR 2023): prune all but the top (100-p)% activations, then energy."""

    variant: ClassVar[str] = "p"
    display_name: ClassVar[str] = "ASH-P"


@register("postprocessors", "ash_b")
class ASHB(_ASH):
    """ASH-B (Djurisic et al., ICLR 2023): prune, binarise kept activations to s1/k, then energy."""

    variant: ClassVar[str] = "b"
    display_name: ClassVar[str] = "ASH-B"


@register("postprocessors", "ash_s")
class ASHS(_ASH):
    """ASH-S (Djurisic et al., ICLR 2023): prune, scale kept activations by exp(s1/s2), then energy."""

    variant: ClassVar[str] = "s"
    display_name: ClassVar[str] = "ASH-S"
    default_for: ClassVar[frozenset[str]] = frozenset({"classifier"})
