"""GL-MCM: Global-Local Maximum Concept Matching.

Paper: Miyai et al., "Zero-Shot In-Distribution Detection in Multi-Object Settings Using Vision-Language
Foundation Models" (GL-MCM), IJCV 2025 / arXiv 2304.04521. Code: AtsuMiyai/GL-MCM,
``utils/detection_util.py`` (``get_ood_scores_clip``, commit ``dfcbdda``); the SeTAR version is
X1AOX1A/SeTAR ``scorers.py::gl_mcm_score``.

Score (higher = ID)::

    GL-MCM(x) = max_c softmax_c(cos(x, t_c) / tau)
              + lambda_local * max_{p, c} softmax_c(cos(x_p, t_c) / tau)

where ``x`` is the global image embedding and ``x_p`` the value-path local (patch) embeddings (feature
``local``, [N, P, D]): the softmax runs over classes for each patch, then the maximum is taken over patches
and classes. tau = 1 on the unscaled cosine and lambda_local = 1 as SeTAR (GL-MCM at ``dfcbdda``; the
current GL-MCM ImageNet script uses 0.5).

Precision: float32 throughout, summed in float32, like the reference (see :mod:`.mcm`).

APS grid: ``lambda_local`` in [0.5, 1.0], the two values used by the reference lineage (no official sweep).

``glmcm_logits`` is the same score over a *classifier's* logits instead of image-text cosines: the global
logits ``z`` [N, C] and the per-patch logits ``z_p`` [N, P, C] (the head applied to every patch token, feature
``local_logits``; Swin-V2: the value path of the last block, spec §6.2)::

    GL-MCM_logits(x) = max_c softmax_c(z / T) + lambda_local * max_{p, c} softmax_c(z_p / T)

This is SeTAR's ``scorers.py::gl_mcm_score`` as its Swin fine-tuning configs run it
(``configs/finetune/swin_base/ID_ImageNet1K/{LoRA,SeTAR+FT}.json``: ``scorers: [mcm_score, gl_mcm_score]``,
``temperature: 100``): the published "Energy" column of the Swin-V2-B fine-tuning tables is this score at
T = 100, and its "MSP" column is ``msp`` at ``temperature=100`` (``mcm_score`` on logits / 100). float32 like
the reference (softmax in torch float32, the two maxima summed in float32).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.mcm import clip_cosine
from oodbench.postprocessors.ops import as_2d, check_in_range, l2_normalize, max_softmax_f32, row_chunks
from oodbench.registry import register


def local_mcm_score(local: np.ndarray, text: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """``max_{p,c} softmax_c(cos(local_p, text_c) / tau)`` in float32.

    Args:
        local: ``[N, P, D]`` patch embeddings; text: ``[C, D]``.
    Returns:
        ``[N]`` float32.
    """
    local = np.asarray(local)
    if local.ndim != 3:
        raise ValueError(f"feature 'local' must be 3-D [N, P, D], got shape {local.shape}")
    txt = torch.from_numpy(l2_normalize(text))
    n, p, _ = local.shape
    out = np.empty(n, dtype=np.float32)
    for sl in row_chunks(n, p * txt.shape[0]):
        cos = torch.from_numpy(l2_normalize(local[sl])) @ txt.T  # [n, P, C]
        probs = (cos / np.float32(tau)).softmax(dim=-1)
        out[sl] = probs.flatten(1).amax(dim=1).numpy()
    return out


def glmcm_score(image: np.ndarray, local: np.ndarray, text: np.ndarray, tau: float = 1.0,
                lambda_local: float = 1.0) -> np.ndarray:
    """Global MCM plus ``lambda_local`` times the local MCM, float32 sum returned as float64 ``[N]``.

    Args:
        image: ``[N, D]``; local: ``[N, P, D]``; text: ``[C, D]``.
    """
    glob = torch.from_numpy(clip_cosine(image, text))
    g = (glob / np.float32(tau)).softmax(dim=-1).amax(dim=-1).numpy()
    loc = local_mcm_score(local, text, tau)
    return (g + np.float32(lambda_local) * loc).astype(np.float64)


def glmcm_logits_score(logits: np.ndarray, local_logits: np.ndarray, temperature: float = 1.0,
                       lambda_local: float = 1.0) -> np.ndarray:
    """``max_c softmax(z / T) + lambda_local * max_{p,c} softmax_c(z_p / T)``, float32, returned as float64 ``[N]``.

    Args:
        logits: ``[N, C]`` global logits; local_logits: ``[N, P, C]`` per-patch logits; temperature: T.
    """
    local_logits = np.asarray(local_logits)
    if local_logits.ndim != 3:
        raise ValueError(f"feature 'local_logits' must be 3-D [N, P, C], got shape {local_logits.shape}")
    t = np.float32(temperature)
    g = max_softmax_f32(logits, temperature).astype(np.float32)
    n, p, c = local_logits.shape
    loc = np.empty(n, dtype=np.float32)
    for sl in row_chunks(n, p * c):
        z = torch.from_numpy(np.ascontiguousarray(local_logits[sl], dtype=np.float32))
        loc[sl] = (z / t).softmax(dim=-1).flatten(1).amax(dim=1).numpy()
    return (g + np.float32(lambda_local) * loc).astype(np.float64)


@register("postprocessors", "glmcm", aliases=("gl_mcm", "gl-mcm"))
class GLMCM(Postprocessor):
    """GL-MCM (Miyai et al.): MCM of the global embedding plus lambda x the best patch-level MCM."""

    display_name: ClassVar[str] = "GL-MCM"
    default_for: ClassVar[frozenset[str]] = frozenset({"clip"})
    requires: ClassVar[frozenset[str]] = frozenset({"image", "local", "text"})
    search_space: ClassVar[dict[str, list]] = {"lambda_local": [0.5, 1.0]}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = "Miyai et al., GL-MCM: Zero-Shot ID Detection in Multi-Object Settings, arXiv 2304.04521"

    def __init__(self, tau: float = 1.0, lambda_local: float = 1.0):
        self.tau = tau
        self.lambda_local = lambda_local

    def score(self, features: Features) -> np.ndarray:
        check_in_range("glmcm", "tau", self.tau, 0, float("inf"), low_open=True)
        check_in_range("glmcm", "lambda_local", self.lambda_local, 0, float("inf"))
        return glmcm_score(as_2d(features, "image"), features["local"], as_2d(features, "text"),
                           self.tau, self.lambda_local)


@register("postprocessors", "glmcm_logits", aliases=("gl_mcm_logits", "gl-mcm-logits"))
class GLMCMLogits(Postprocessor):
    """GL-MCM over a classifier's logits: max softmax of the global logits plus lambda x that of the best patch."""

    display_name: ClassVar[str] = "GL-MCM (logits)"
    requires: ClassVar[frozenset[str]] = frozenset({"logits", "local_logits"})
    search_space: ClassVar[dict[str, list]] = {"lambda_local": [0.5, 1.0]}
    fit_on: ClassVar[str | None] = None
    fit_params: ClassVar[frozenset[str]] = frozenset()
    paper: ClassVar[str] = ("Miyai et al., GL-MCM, arXiv 2304.04521, on classifier logits as SeTAR's Swin "
                            "fine-tuning evaluation (Li et al., NeurIPS 2024)")

    def __init__(self, temperature: float = 1.0, lambda_local: float = 1.0):
        self.temperature = temperature
        self.lambda_local = lambda_local

    def score(self, features: Features) -> np.ndarray:
        check_in_range("glmcm_logits", "temperature", self.temperature, 0, float("inf"), low_open=True)
        check_in_range("glmcm_logits", "lambda_local", self.lambda_local, 0, float("inf"))
        return glmcm_logits_score(as_2d(features, "logits"), features["local_logits"], self.temperature,
                                  self.lambda_local)
