"""ReAct: Rectified Activations.

Paper: Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified Activations", NeurIPS 2021.
Code: deeplearning-wisc/react; OpenOOD ``openood/postprocessors/react_postprocessor.py`` and
``openood/networks/react_net.py``.

Fit: ``c = np.percentile(all entries of the ID fit penultimate features, p)`` (OpenOOD computes it on the ID
val split, the paper on ID train; here it is the benchmark's ID fit split). Score (higher = ID)::

    ReAct(x) = logsumexp(W · min(h, c) + b)

with h the pooled penultimate feature [F] and (W, b) the last linear layer (energy at T = 1).
Defaults p = 90; APS grid [85, 90, 95, 99] (OpenOOD ``configs/postprocessors/react.yml``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, check_in_range, linear_energy
from oodbench.registry import register


def react_threshold(fit_penultimate: np.ndarray, percentile: float) -> float:
    """The p-th percentile over *all* entries of the ID fit activations ``[N, F]`` (np.percentile, linear)."""
    return float(np.percentile(np.asarray(fit_penultimate).ravel(), percentile))


def react_score(penultimate: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, threshold: float) -> np.ndarray:
    """``logsumexp(W · min(h, threshold) + b)``, float64 ``[N]``.

    Args:
        penultimate: ``[N, F]`` (not modified); weight: ``[C, F]``; bias: ``[C]``; threshold: clip value c.
    """
    clipped = np.minimum(np.asarray(penultimate), threshold)  # a new array: cached features stay intact
    return linear_energy(clipped, weight, bias)


@register("postprocessors", "react")
class ReAct(Postprocessor):
    """ReAct (Sun et al., NeurIPS 2021): energy of the last layer on penultimate features clipped at c."""

    display_name: ClassVar[str] = "ReAct"
    default_for: ClassVar[frozenset[str]] = frozenset({"classifier"})
    requires: ClassVar[frozenset[str]] = frozenset({"penultimate", "fc_weight", "fc_bias"})
    search_space: ClassVar[dict[str, list]] = {"percentile": [85, 90, 95, 99]}
    fit_on: ClassVar[str | None] = "id_fit"
    fit_params: ClassVar[frozenset[str]] = frozenset({"percentile"})
    paper: ClassVar[str] = "Sun et al., ReAct: OOD Detection With Rectified Activations, NeurIPS 2021"

    def __init__(self, percentile: float = 90):
        self.percentile = percentile

    def fit(self, features: Features | None = None, encoder: Any = None) -> "ReAct":
        check_in_range("react", "percentile", self.percentile, 0, 100)
        if features is None:
            raise ValueError("react needs the ID fit features to compute its clipping threshold")
        self.threshold_ = react_threshold(as_2d(features, "penultimate"), self.percentile)
        return self

    def score(self, features: Features) -> np.ndarray:
        self._check_fitted("threshold_")
        return react_score(as_2d(features, "penultimate"), features["fc_weight"], features["fc_bias"], self.threshold_)
