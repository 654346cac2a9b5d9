"""Energy score (OpenOOD: EBO).

Paper: Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020. Code: wetliu/energy_ood;
OpenOOD ``openood/postprocessors/ebo_postprocessor.py``; SeTAR ``scorers.py::energy_score``.

Score (higher = ID; the negative free energy)::

    Energy(x) = T · logsumexp(z / T)

on the backbone's ``logits`` z, T = 1 (OpenOOD default; its current sweep is [1]). On CLIP the logits are
``logit_scale · cos``. Computed in float64.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, check_in_range, energy
from oodbench.registry import register


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``T * logsumexp(logits / T)``, float64 ``[N]``. logits: ``[N, C]``."""
    return energy(logits, temperature)


@register("postprocessors", "energy", aliases=("ebo",))
class Energy(Postprocessor):
    """Energy (Liu et al., NeurIPS 2020): T x logsumexp of the logits / T."""

    display_name: ClassVar[str] = "Energy"
    default_for: ClassVar[frozenset[str]] = frozenset({"clip", "classifier"})
    requires: ClassVar[frozenset[str]] = frozenset({"logits"})
    search_space: ClassVar[dict[str, list]] = {"temperature": [1.0]}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = "Liu et al., Energy-based Out-of-distribution Detection, NeurIPS 2020"

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def score(self, features: Features) -> np.ndarray:
        check_in_range("energy", "temperature", self.temperature, 0, float("inf"), low_open=True)
        return energy_score(as_2d(features, "logits"), self.temperature)
