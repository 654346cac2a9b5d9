"""DICE: Directed Sparsification.

Paper: Sun & Li, "DICE: Leveraging Sparsification for Out-of-Distribution Detection", ECCV 2022.
Code: deeplearning-wisc/dice; OpenOOD ``openood/postprocessors/dice_postprocessor.py``.

Fit: the mean ID activation m̄ [F] over the ID fit split (OpenOOD: ID train), the contribution matrix
``V = m̄ ⊙ W`` ([C, F], ``V_cj = m̄_j · W_cj``), its p-th percentile ``τ = np.percentile(V, p)`` over all C·F
entries, and the mask ``M = 1[V > τ]`` (keeps the top (100 − p) % of contributions). Score (higher = ID)::

    DICE(x) = logsumexp((W ⊙ M) · h + b)

(energy at T = 1). p = 90; APS grid [90] (OpenOOD sweeps nothing for DICE). Unlike OpenOOD, which builds the
mask lazily once, the mask is rebuilt on every ``fit`` so a changed ``percentile`` takes effect. The mean is
accumulated in float64.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, check_in_range, linear_energy
from oodbench.registry import register


def dice_mask(mean_activation: np.ndarray, weight: np.ndarray, percentile: float) -> np.ndarray:
    """Boolean ``[C, F]`` mask of contributions ``m̄_j · W_cj`` strictly above their p-th percentile.

    Args:
        mean_activation: ``[F]``; weight: ``[C, F]``.
    """
    contrib = np.asarray(mean_activation, dtype=np.float64)[None, :] * np.asarray(weight, dtype=np.float64)
    return contrib > np.percentile(contrib, percentile)


def dice_score(penultimate: np.ndarray, masked_weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``logsumexp(h · masked_W.T + b)``, float64 ``[N]``. penultimate: ``[N, F]``; masked_weight: ``[C, F]``."""
    return linear_energy(penultimate, masked_weight, bias)


@register("postprocessors", "dice")
class DICE(Postprocessor):
    """DICE (Sun & Li, ECCV 2022): energy of the last layer with weights sparsified by mean ID contribution."""

    display_name: ClassVar[str] = "DICE"
    default_for: ClassVar[frozenset[str]] = frozenset({"classifier"})
    requires: ClassVar[frozenset[str]] = frozenset({"penultimate", "fc_weight", "fc_bias"})
    search_space: ClassVar[dict[str, list]] = {"percentile": [90]}
    fit_on: ClassVar[str | None] = "id_fit"
    fit_params: ClassVar[frozenset[str]] = frozenset({"percentile"})
    paper: ClassVar[str] = "Sun & Li, DICE: Leveraging Sparsification for OOD Detection, ECCV 2022"

    def __init__(self, percentile: float = 90):
        self.percentile = percentile

    def fit(self, features: Features | None = None, encoder: Any = None) -> "DICE":
        check_in_range("dice", "percentile", self.percentile, 0, 100)
        if features is None:
            raise ValueError("dice needs the ID fit features to compute the mean activation")
        self.mean_activation_ = np.asarray(as_2d(features, "penultimate"), dtype=np.float64).mean(axis=0)
        weight = np.asarray(features["fc_weight"], dtype=np.float64)
        self.mask_ = dice_mask(self.mean_activation_, weight, self.percentile)
        self.masked_weight_ = weight * self.mask_
        return self

    def score(self, features: Features) -> np.ndarray:
        self._check_fitted("masked_weight_")
        return dice_score(as_2d(features, "penultimate"), self.masked_weight_, features["fc_bias"])
