"""KNN: deep nearest neighbours.

Paper: Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022.
Code: deeplearning-wisc/knn-ood; OpenOOD ``openood/postprocessors/knn_postprocessor.py``.

Fit: L2-normalise the ID fit penultimate features and put them in a faiss ``IndexFlatL2`` (exact search).
Score (higher = ID)::

    KNN(x) = − || ĥ(x) − ĥ_(k) ||²

the negated **squared** L2 distance (what ``IndexFlatL2`` returns, as OpenOOD) from the normalised test
feature to its k-th nearest normalised ID feature. The squared distance ranks exactly like the plain
distance of the paper, so every metric is the same. Normalisation follows OpenOOD: ``h / ||h|| + 1e-10``
(the epsilon is added after the division; a zero vector stays zero instead of becoming NaN).

k = 50; APS grid [50, 100, 200, 500, 1000] (OpenOOD ``configs/postprocessors/knn.yml``). A k larger than the
fit bank is clipped to the bank size with a warning. faiss searches in float32.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.ops import as_2d, l2_normalize
from oodbench.registry import register

log = logging.getLogger("oodbench")


def knn_normalize(h: np.ndarray) -> np.ndarray:
    """OpenOOD's ``h / ||h|| + 1e-10`` in float32, C-contiguous (faiss input). h: ``[N, F]``."""
    return np.ascontiguousarray(l2_normalize(h, np.float32) + np.float32(1e-10))


def build_index(bank: np.ndarray):
    """A faiss ``IndexFlatL2`` holding ``bank`` (``[M, F]``, already normalised)."""
    import faiss

    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    return index


def knn_score(index, penultimate: np.ndarray, k: int) -> np.ndarray:
    """``−`` squared L2 distance to the k-th nearest neighbour in ``index``, float64 ``[N]``.

    Args:
        index: faiss index over normalised ID features; penultimate: ``[N, F]`` raw test features; k >= 1.
    """
    dist, _ = index.search(knn_normalize(penultimate), int(k))
    return -dist[:, int(k) - 1].astype(np.float64)


@register("postprocessors", "knn")
class KNN(Postprocessor):
    """KNN (Sun et al., ICML 2022): negative distance to the k-th nearest normalised ID feature."""

    display_name: ClassVar[str] = "KNN"
    default_for: ClassVar[frozenset[str]] = frozenset({"classifier"})
    requires: ClassVar[frozenset[str]] = frozenset({"penultimate"})
    search_space: ClassVar[dict[str, list]] = {"k": [50, 100, 200, 500, 1000]}
    fit_on: ClassVar[str | None] = "id_fit"
    fit_params: ClassVar[frozenset[str]] = frozenset()  # the index does not depend on k
    paper: ClassVar[str] = "Sun et al., Out-of-Distribution Detection with Deep Nearest Neighbors, ICML 2022"

    def __init__(self, k: int = 50):
        self.k = k

    def fit(self, features: Features | None = None, encoder: Any = None) -> "KNN":
        if features is None:
            raise ValueError("knn needs the ID fit features to build its index")
        bank = knn_normalize(as_2d(features, "penultimate"))
        if len(bank) == 0:
            raise ValueError("knn: the ID fit features are empty")
        self.index_ = build_index(bank)
        self.n_bank_ = len(bank)
        return self

    def score(self, features: Features) -> np.ndarray:
        self._check_fitted("index_")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise UserError(f"knn: k={self.k!r} must be a positive integer")
        k = int(self.k)
        if k > self.n_bank_:
            log.warning("knn: k=%d is larger than the %d ID fit features; using k=%d", k, self.n_bank_, self.n_bank_)
            k = self.n_bank_
        return knn_score(self.index_, as_2d(features, "penultimate"), k)
