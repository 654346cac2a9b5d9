"""MaxLogit (OpenOOD: MLS).

Paper: Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World Settings", ICML 2022.
Code: hendrycks/anomaly-seg; OpenOOD ``openood/postprocessors/maxlogit_postprocessor.py``.

Score (higher = ID)::

    MaxLogit(x) = max_c z_c

on the backbone's ``logits`` z (CLIP: ``logit_scale · cos``). No hyperparameters.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d
from oodbench.registry import register


def maxlogit_score(logits: np.ndarray) -> np.ndarray:
    """``max_c logits_c``, float64 ``[N]``. logits: ``[N, C]``."""
    return np.max(np.asarray(logits), axis=-1).astype(np.float64)


@register("postprocessors", "maxlogit", aliases=("mls", "max_logit"))
class MaxLogit(Postprocessor):
    """MaxLogit (Hendrycks et al., ICML 2022): the largest logit."""

    display_name: ClassVar[str] = "MaxLogit"
    default_for: ClassVar[frozenset[str]] = frozenset({"clip", "classifier"})
    requires: ClassVar[frozenset[str]] = frozenset({"logits"})
    search_space: ClassVar[dict[str, list]] = {}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = "Hendrycks et al., Scaling Out-of-Distribution Detection for Real-World Settings, ICML 2022"

    def __init__(self):
        pass

    def score(self, features: Features) -> np.ndarray:
        return maxlogit_score(as_2d(features, "logits"))
