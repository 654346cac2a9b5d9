"""MCM: Maximum Concept Matching.

Paper: Ming et al., "Delving into Out-of-Distribution Detection with Vision-Language Representations",
NeurIPS 2022. Code: deeplearning-wisc/MCM, ``utils/detection_util.py`` (``get_ood_scores_clip``); the
SeTAR version is X1AOX1A/SeTAR ``scorers.py::mcm_score`` (``softmax(100·cos / 100)``).

Score (higher = ID)::

    MCM(x) = max_c softmax_c( cos(x, t_c) / tau )

on the *unscaled* cosine between the global image embedding and the class-prompt text embeddings, tau = 1
(MCM's ``T=1``; SeTAR's ``temperature=100`` on ``100·cos`` is the same thing). No CLIP logit scale enters.

Precision: normalisation, cosines and the softmax run in float32 like the reference. At tau = 1 the score
is about 1/C and float32 produces ties that move FPR95 slightly (SeTAR's shipped vanilla ImageNet scores have
48,443 distinct values among 50,000); a float64 softmax would break those ties differently.

APS grid: ``tau`` in [0.01, 1, 10], the sweep of OpenOOD's ``configs/postprocessors/mcm.yml`` (OpenOOD itself
keeps APS off for MCM; the reference value is tau = 1).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, check_in_range, l2_normalize, max_softmax_f32
from oodbench.registry import register


def clip_cosine(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Cosine similarity of every image to every class text, float32.

    Args:
        image: ``[N, D]`` image embeddings (any norm).
        text: ``[C, D]`` text embeddings (any norm).
    Returns:
        ``[N, C]`` float32.
    """
    return l2_normalize(image) @ l2_normalize(text).T


def mcm_score(image: np.ndarray, text: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """``max_c softmax(cos(image, text_c) / tau)`` in float32, returned as float64 ``[N]``.

    Args:
        image: ``[N, D]``; text: ``[C, D]``; tau: softmax temperature on the cosine.
    """
    return max_softmax_f32(clip_cosine(image, text), tau)


@register("postprocessors", "mcm")
class MCM(Postprocessor):
    """MCM (Ming et al., NeurIPS 2022): max softmax of image-text cosines at temperature tau."""

    display_name: ClassVar[str] = "MCM"
    default_for: ClassVar[frozenset[str]] = frozenset({"clip"})
    requires: ClassVar[frozenset[str]] = frozenset({"image", "text"})
    search_space: ClassVar[dict[str, list]] = {"tau": [0.01, 1.0, 10.0]}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = "Ming et al., Delving into OOD Detection with Vision-Language Representations, NeurIPS 2022"

    def __init__(self, tau: float = 1.0):
        self.tau = tau

    def score(self, features: Features) -> np.ndarray:
        check_in_range("mcm", "tau", self.tau, 0, float("inf"), low_open=True)
        return mcm_score(as_2d(features, "image"), as_2d(features, "text"), self.tau)
