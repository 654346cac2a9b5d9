"""MSP: Maximum Softmax Probability.

Paper: Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution Examples in Neural
Networks", ICLR 2017. Code: hendrycks/error-detection; OpenOOD ``openood/postprocessors/base_postprocessor.py``
(the default postprocess); SeTAR ``scorers.py::mcm_score`` with ``temperature=1`` on Swin logits.

Score (higher = ID)::

    MSP(x) = max_c softmax_c(z / T)

on the backbone's ``logits`` z (CLIP: ``logit_scale · cos``, so MSP on CLIP is softmax(100·cos), *not* MCM).
T = 1 is the baseline; T > 1 is temperature scaling (SeTAR's Swin fine-tune configs use T = 100).
Computed in float32 like the reference (see :mod:`.ops`). No APS grid (OpenOOD has none for MSP).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, check_in_range, max_softmax_f32
from oodbench.registry import register


def msp_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``max_c softmax(logits / T)_c`` in float32, float64 ``[N]``. logits: ``[N, C]``."""
    return max_softmax_f32(logits, temperature)


@register("postprocessors", "msp")
class MSP(Postprocessor):
    """MSP (Hendrycks & Gimpel, ICLR 2017): maximum softmax probability of the logits."""

    display_name: ClassVar[str] = "MSP"
    default_for: ClassVar[frozenset[str]] = frozenset({"classifier"})
    requires: ClassVar[frozenset[str]] = frozenset({"logits"})
    search_space: ClassVar[dict[str, list]] = {}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = "Hendrycks & Gimpel, A Baseline for Detecting Misclassified and OOD Examples, ICLR 2017"

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def score(self, features: Features) -> np.ndarray:
        check_in_range("msp", "temperature", self.temperature, 0, float("inf"), low_open=True)
        return msp_score(as_2d(features, "logits"), self.temperature)
