"""Metrics against hand-computed cases, scikit-learn, and plain transcriptions of the official rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oodbench import metrics as M


# ------------------------------------------------------------------ independent references
def ref_fpr_nearest(id_scores, ood_scores, level=0.95):
    """The MCM/SeTAR ``fpr_and_fdr_at_recall`` rule, written out step by step (ID positive)."""
    s = np.concatenate([id_scores, ood_scores]).astype(np.float64)
    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    thresholds = sorted(set(s.tolist()), reverse=True)
    points = []  # (recall, false positives) at every distinct threshold, high to low
    for t in thresholds:
        tp = np.sum((s >= t) & (y == 1))
        fp = np.sum((s >= t) & (y == 0))
        points.append((tp / y.sum(), fp))
    # keep thresholds up to the first that reaches full recall, walk them from low to high threshold
    first_full = next(i for i, (r, _) in enumerate(points) if r == 1.0)
    walk = list(reversed(points[: first_full + 1])) + [(1.0, 0)]
    best = min(range(len(walk)), key=lambda i: (abs(walk[i][0] - level), i))
    return walk[best][1] / (len(y) - y.sum())


def ref_fpr_oodpos(id_scores, ood_scores, level=0.95):
    """OpenOOD ``auc_and_fpr_recall``: OOD positive, roc_curve, first TPR >= level."""
    conf = np.concatenate([id_scores, ood_scores])
    ood = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    fpr, tpr, _ = roc_curve(ood, -conf)
    return fpr[np.argmax(tpr >= level)]


def sk_all(id_scores, ood_scores):
    s = np.concatenate([id_scores, ood_scores])
    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    return {
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "aupr_out": average_precision_score(1 - y, -s),
        "fpr95": ref_fpr_nearest(id_scores, ood_scores),
        "fpr95_oodpos": ref_fpr_oodpos(id_scores, ood_scores),
    }


# ------------------------------------------------------------------------ hand-computed
def test_simple_case_by_hand():
    id_s, ood_s = [0.9, 0.8, 0.7, 0.6], [0.65, 0.5, 0.4, 0.3]
    r = M.ood_metrics(id_s, ood_s)
    assert r["auroc"] == pytest.approx(15 / 16)
    assert r["fpr95"] == pytest.approx(1 / 4)  # full ID recall needs threshold 0.6: one OOD (0.65) above


def test_nearest_recall_rule_differs_from_first_at_least():
    # 10 ID scores 10..1; recall 0.9 (|0.9-0.95| = 0.04999..) is nearer than recall 1.0 (0.05000..).
    # One OOD score ties with the lowest ID score, so full recall costs one more false positive.
    id_s = np.arange(10, 0, -1, dtype=float)
    ood_s = np.array([5.5, 1.0, 0.5])
    # at recall 0.9 (threshold 2) only 5.5 is accepted: 1/3; "first recall >= 0.95" would give 2/3
    assert M.fpr95(id_s, ood_s) == pytest.approx(1 / 3)
    assert ref_fpr_nearest(id_s, ood_s) == pytest.approx(1 / 3)
    # OOD-positive: catching all three OOD (threshold 0.5.. 5.5) rejects IDs 5,4,3,2,1
    assert M.fpr95_oodpos(id_s, ood_s) == pytest.approx(5 / 10)
    assert M.fpr95_threshold(id_s, ood_s) == 2.0


def test_ties_by_hand():
    id_s, ood_s = [1.0, 1.0, 0.0], [1.0, 0.0]
    r = M.ood_metrics(id_s, ood_s)
    assert r["auroc"] == pytest.approx(3.5 / 6)  # ties count half
    assert r["fpr95"] == pytest.approx(1.0)
    assert r["aupr_in"] == pytest.approx(2 / 3 * 2 / 3 + 1 / 3 * 3 / 5)


def test_aupr_in_and_out_direction():
    id_s, ood_s = [3.0, 2.0, 1.0], [2.5]
    r = M.ood_metrics(id_s, ood_s)
    assert r["aupr_in"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)  # ID positive
    assert r["aupr_out"] == pytest.approx(1 / 3)  # OOD positive: the single OOD sample is ranked third
    assert M.aupr_in(id_s, ood_s) == r["aupr_in"] and M.aupr_out(id_s, ood_s) == r["aupr_out"]


def test_perfect_and_reversed_separation():
    good = M.ood_metrics([5, 6, 7], [1, 2])
    assert good == {"fpr95": 0.0, "fpr95_oodpos": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0}
    bad = M.ood_metrics([1, 2], [5, 6, 7])
    assert bad["auroc"] == 0.0 and bad["fpr95"] == 1.0


# ------------------------------------------------------------------- against references
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rounding", [None, 1])
def test_agrees_with_sklearn_and_reference_rules(seed, rounding):
    rng = np.random.default_rng(seed)
    id_s = rng.normal(1, 1, rng.integers(1, 300))
    ood_s = rng.normal(0, 1.5, rng.integers(1, 300))
    if rounding is not None:  # many ties
        id_s, ood_s = np.round(id_s, rounding), np.round(ood_s, rounding)
    ours, ref = M.ood_metrics(id_s, ood_s), sk_all(id_s, ood_s)
    for k in M.METRICS:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


def test_asymmetric_gaussians_conventions_differ_by_tens_of_points():
    # openood-reference §3.3: ID N(2, 0.5), OOD N(0, 2), 5k each: 27.3 vs 99.2
    rng = np.random.default_rng(0)
    id_s, ood_s = rng.normal(2, 0.5, 5000), rng.normal(0, 2, 5000)
    r = M.ood_metrics(id_s, ood_s)
    assert r["fpr95"] == pytest.approx(ref_fpr_nearest(id_s, ood_s), abs=1e-12)
    assert r["fpr95_oodpos"] == pytest.approx(ref_fpr_oodpos(id_s, ood_s), abs=1e-12)
    assert 0.22 < r["fpr95"] < 0.33
    assert r["fpr95_oodpos"] > 0.95
    assert r["fpr95_oodpos"] - r["fpr95"] > 0.6


def test_drop_intermediate_collinear_points_follow_sklearn():
    # equal increments of one ID and one OOD per threshold: sklearn drops the collinear points
    id_s = np.arange(40, dtype=float)
    ood_s = np.arange(40, dtype=float) - 0.0
    assert M.fpr95_oodpos(id_s, ood_s) == pytest.approx(ref_fpr_oodpos(id_s, ood_s))


def test_float32_inputs_give_the_float32_ranking():
    rng = np.random.default_rng(1)
    a = rng.normal(size=500).astype(np.float32)
    b = rng.normal(size=500).astype(np.float32) - 0.5
    assert M.ood_metrics(a, b) == M.ood_metrics(a.astype(np.float64), b.astype(np.float64))


def test_evaluate_average_is_plain_mean():
    rng = np.random.default_rng(2)
    id_s = rng.normal(1, 1, 200)
    oods = {"a": rng.normal(0, 1, 50), "b": rng.normal(-1, 1, 400)}
    rows = M.evaluate(id_s, oods)
    assert list(rows) == ["a", "b", "average"]
    for m in M.METRICS:
        assert rows["average"][m] == pytest.approx((rows["a"][m] + rows["b"][m]) / 2)


def test_accuracy():
    assert M.accuracy([1, 2, 3, 0], [1, 2, 0, 0]) == 0.75
    with pytest.raises(M.MetricInputError):
        M.accuracy([1, 2], [1])


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "id_s, ood_s, message",
    [
        ([], [1.0], "ID scores are empty"),
        ([1.0], [], "OOD scores are empty"),
        ([1.0, np.nan], [0.0], "NaN/inf"),
        ([1.0], [np.inf, 0.0], "NaN/inf"),
        (np.ones((2, 3)), [0.0], "one value per sample"),
        (["a", "b"], [0.0], "real numbers"),
    ],
)
def test_bad_input_is_a_clear_error(id_s, ood_s, message):
    with pytest.raises(M.MetricInputError, match=message):
        M.ood_metrics(id_s, ood_s)


def test_no_ood_set():
    with pytest.raises(M.MetricInputError, match="no OOD set"):
        M.evaluate([1.0], {})


# ---------------------------------------------------------------------- properties
scores = st.lists(st.integers(-50, 50), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(scores, scores)
def test_invariant_to_strictly_increasing_transforms(a, b):
    a, b = np.array(a, float), np.array(b, float)
    base = M.ood_metrics(a, b)
    for f in (lambda x: 3 * x + 7, lambda x: x**3, np.exp):
        assert M.ood_metrics(f(a), f(b)) == pytest.approx(base, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(scores, scores)
def test_swapping_id_and_ood_with_negation(a, b):
    a, b = np.array(a, float), np.array(b, float)
    r, s = M.ood_metrics(a, b), M.ood_metrics(-b, -a)
    assert r["auroc"] == pytest.approx(s["auroc"], abs=1e-12)
    assert r["aupr_in"] == pytest.approx(s["aupr_out"], abs=1e-12)
    assert r["aupr_out"] == pytest.approx(s["aupr_in"], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(scores, scores)
def test_property_agreement_with_references(a, b):
    a, b = np.array(a, float), np.array(b, float)
    ours, ref = M.ood_metrics(a, b), sk_all(a, b)
    for k in M.METRICS:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k
