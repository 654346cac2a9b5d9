"""OOD-detection metrics. Pure numpy; inputs are scores oriented **higher = more in-distribution**.

Conventions (every result records them, see :data:`CONVENTIONS`):

``fpr95``
    Fraction of OOD samples accepted when 95% of ID samples are accepted, ID = positive class, the operating
    point chosen as the **nearest** recall to 0.95 (``argmin |recall - 0.95|``). This is the rule of the
    official MCM / GL-MCM / NegLabel / SeTAR metric code (``fpr_and_fdr_at_recall``) and the default of
    every oodbench table.
``fpr95_oodpos``
    Fraction of ID samples rejected at the first ROC point where at least 95% of OOD samples are rejected,
    OOD = positive class (OpenOOD >= Aug 2023 and pytorch-ood). Can differ from ``fpr95`` by tens of points
    when the two score distributions have different spreads.
``auroc``
    Area under the ROC curve, tied scores counted half (equal to ``sklearn.metrics.roc_auc_score``).
``aupr_in`` / ``aupr_out``
    Average precision (``sklearn.metrics.average_precision_score``) with ID resp. OOD as the positive class.
    ``aupr_in`` is the AUPR column of the SeTAR tables.

All values are fractions in [0, 1]; tables show them x100 with 2 decimals. Averages over OOD sets are plain means.

The whole set is computed from one sort of the pooled scores (50k + 50k scores take a few milliseconds); the
tests check every value against scikit-learn and against straightforward transcriptions of the official rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("fpr95", "fpr95_oodpos", "auroc", "aupr_in", "aupr_out")

CONVENTIONS = {
    "orientation": "higher score = more in-distribution",
    "fpr95": "OOD acceptance at 95% ID recall, ID positive, nearest-recall operating point (MCM/SeTAR official code)",
    "fpr95_oodpos": "ID rejection at the first point with >=95% OOD recall, OOD positive (OpenOOD>=2023-08, pytorch-ood)",
    "auroc": "ROC AUC, ties count half (sklearn roc_auc_score)",
    "aupr_in": "average precision, ID positive (sklearn average_precision_score)",
    "aupr_out": "average precision, OOD positive (sklearn average_precision_score on negated scores)",
    "average": "arithmetic mean over OOD sets",
}


class MetricInputError(ValueError):
    """Scores that no metric can be computed from (empty, NaN/inf, wrong shape)."""


def check_scores(scores, name: str) -> np.ndarray:
    """Return ``scores`` as a finite 1-D float64 array or raise :class:`MetricInputError`."""
    arr = np.asarray(scores)
    if arr.ndim != 1:
        arr = arr.squeeze()
        if arr.ndim != 1:
            raise MetricInputError(f"{name} scores must be one value per sample, got an array of shape {np.shape(scores)}")
    if arr.size == 0:
        raise MetricInputError(f"{name} scores are empty: both ID and OOD scores are needed")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise MetricInputError(f"{name} scores must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise MetricInputError(f"{name} scores contain {int(bad.sum())} NaN/inf value(s) out of {arr.size}")
    return arr


@dataclass(frozen=True)
class _Curve:
    """Cumulative counts at every distinct threshold, scores sorted descending (sklearn's _binary_clf_curve)."""

    tps: np.ndarray  # positives scored >= threshold
    fps: np.ndarray  # negatives scored >= threshold

    @classmethod
    def from_sorted(cls, sorted_scores: np.ndarray, sorted_pos: np.ndarray) -> "_Curve":
        distinct = np.flatnonzero(np.diff(sorted_scores))
        idx = np.r_[distinct, sorted_scores.size - 1]
        tps = np.cumsum(sorted_pos, dtype=np.float64)[idx]
        return cls(tps=tps, fps=1.0 + idx - tps)

    def average_precision(self) -> float:
        precision = self.tps / (self.tps + self.fps)
        recall = self.tps / self.tps[-1]
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))

    def auroc(self) -> float:
        tpr = np.r_[0.0, self.tps / self.tps[-1]]
        fpr = np.r_[0.0, self.fps / self.fps[-1]]
        return float(np.trapezoid(tpr, fpr))

    def fpr_at_recall_nearest(self, level: float) -> tuple[float, int]:
        """MCM/SeTAR ``fpr_and_fdr_at_recall``: FPR at the operating point whose recall is nearest ``level``.

        Returns the FPR and the index (into the distinct thresholds) of the operating point.
        """
        recall = self.tps / self.tps[-1]
        last = int(np.searchsorted(self.tps, self.tps[-1]))
        sl = slice(last, None, -1)
        recall_r = np.r_[recall[sl], 1.0]
        fps_r = np.r_[self.fps[sl], 0.0]
        cutoff = int(np.argmin(np.abs(recall_r - level)))
        return float(fps_r[cutoff] / self.fps[-1]), last - cutoff

    def fpr_at_recall_first(self, level: float) -> float:
        """sklearn ``roc_curve`` (drop_intermediate=True) then FPR at the first TPR >= ``level`` (OpenOOD)."""
        tps, fps = self.tps, self.fps
        if tps.size > 2:
            keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
            tps, fps = tps[keep], fps[keep]
        tpr = np.r_[0.0, tps] / tps[-1]
        fpr = np.r_[0.0, fps] / fps[-1]
        return float(fpr[np.argmax(tpr >= level)])


def _curves(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[_Curve, _Curve, np.ndarray]:
    """ID-positive curve (descending scores) and OOD-positive curve (ascending scores) from a single sort."""
    scores = np.concatenate([id_scores, ood_scores])
    is_id = np.zeros(scores.size, dtype=np.float64)
    is_id[: id_scores.size] = 1.0
    order = np.argsort(scores, kind="mergesort")[::-1]
    s, y = scores[order], is_id[order]
    id_curve = _Curve.from_sorted(s, y)
    ood_curve = _Curve.from_sorted(-s[::-1], 1.0 - y[::-1])
    return id_curve, ood_curve, s


def fpr95(id_scores, ood_scores, recall: float = 0.95) -> float:
    """OOD acceptance rate at ``recall`` ID recall, nearest-recall rule (see module docstring)."""
    id_curve, _, _ = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    return id_curve.fpr_at_recall_nearest(recall)[0]


def fpr95_threshold(id_scores, ood_scores, recall: float = 0.95) -> float:
    """The score threshold of the ``fpr95`` operating point (the official code saves it as ``cutoffs``)."""
    id_curve, _, s = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    _, idx = id_curve.fpr_at_recall_nearest(recall)
    thresholds = s[np.r_[np.flatnonzero(np.diff(s)), s.size - 1]]
    return float(thresholds[idx])


def fpr95_oodpos(id_scores, ood_scores, recall: float = 0.95) -> float:
    """ID rejection rate at ``recall`` OOD recall, first-point rule of OpenOOD / pytorch-ood."""
    _, ood_curve, _ = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    return ood_curve.fpr_at_recall_first(recall)


def auroc(id_scores, ood_scores) -> float:
    id_curve, _, _ = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    return id_curve.auroc()


def aupr_in(id_scores, ood_scores) -> float:
    id_curve, _, _ = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    return id_curve.average_precision()


def aupr_out(id_scores, ood_scores) -> float:
    _, ood_curve, _ = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    return ood_curve.average_precision()


def accuracy(predictions, labels) -> float:
    """Top-1 accuracy of ``predictions`` (class indices) against ``labels``."""
    pred, lab = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    if pred.shape != lab.shape or pred.size == 0:
        raise MetricInputError(f"accuracy needs equal, non-empty predictions and labels, got {pred.size} and {lab.size}")
    return float(np.mean(pred == lab))


def ood_metrics(id_scores, ood_scores, recall: float = 0.95) -> dict[str, float]:
    """Every OOD metric of :data:`METRICS` for one (ID, OOD) pair, from one sort."""
    id_curve, ood_curve, _ = _curves(check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD"))
    return {
        "fpr95": id_curve.fpr_at_recall_nearest(recall)[0],
        "fpr95_oodpos": ood_curve.fpr_at_recall_first(recall),
        "auroc": id_curve.auroc(),
        "aupr_in": id_curve.average_precision(),
        "aupr_out": ood_curve.average_precision(),
    }


def _at_least_two(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.size < 2:
        raise MetricInputError(f"{name} scores: {arr.size} value; OOD metrics need at least 2 ID and 2 OOD scores "
                               "(with one, AUROC and FPR95 can only be 0, 50 or 100)")
    return arr


def nearest_recall(n_id: int, recall: float = 0.95) -> float:
    """The ID recall of the ``fpr95`` operating point with ``n_id`` distinct ID scores: the ``k / n_id`` nearest
    ``recall``, the higher one on a tie (as the official rule's reversed ``argmin``)."""
    if n_id < 1:
        return 0.0
    levels = np.arange(n_id, -1, -1) / n_id
    return float(levels[np.argmin(np.abs(levels - recall))])


def evaluate(id_scores, ood_scores: dict[str, np.ndarray], recall: float = 0.95) -> dict[str, dict[str, float]]:
    """Metrics for each OOD set against the same ID scores, plus an ``"average"`` row (plain mean).

    Raises:
        MetricInputError: no OOD set, or fewer than 2 scores in the ID set or an OOD set (the metrics are then
            0, 50 or 100 whatever the scores).
    """
    if not ood_scores:
        raise MetricInputError("no OOD set given")
    if "average" in ood_scores:
        raise MetricInputError("an OOD set may not be named 'average': that row holds the mean over the sets")
    id_arr = _at_least_two(check_scores(id_scores, "ID"), "ID")
    rows = {name: ood_metrics(id_arr, _at_least_two(check_scores(s, f"OOD set '{name}'"), f"OOD set '{name}'"), recall)
            for name, s in ood_scores.items()}
    rows["average"] = {m: float(np.mean([r[m] for r in rows.values()])) for m in METRICS}
    return rows
