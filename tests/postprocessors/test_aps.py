"""APS: grid order, best AUROC, ties to the first grid point, chosen params returned and set, refits only when
``fit`` depends on the changed values, no network anywhere."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from oodbench.features import Features
from oodbench.aps import aps, search_grid
from oodbench.postprocessors.base import Postprocessor
from oodbench.registry import get


class _Distance(Postprocessor):
    """Score = -|x - center| * gain: best AUROC when ``center`` is where the ID samples are (not registered)."""

    requires: ClassVar[frozenset[str]] = frozenset({"x"})
    search_space: ClassVar[dict] = {"center": [0.0, 2.0, 5.0], "gain": [1.0, 3.0]}
    fit_on: ClassVar[str | None] = "id_fit"
    fit_params: ClassVar[frozenset[str]] = frozenset({"center"})
    paper: ClassVar[str] = "test"

    def __init__(self, center: float = 0.0, gain: float = 1.0):
        self.center = center
        self.gain = gain

    def fit(self, features=None, encoder=None):
        self.fits_ = getattr(self, "fits_", 0) + 1
        self.fitted_center_ = self.center
        return self

    def score(self, features):
        assert self.fitted_center_ == self.center, "scored with a stale fit"
        return -np.abs(features["x"] - self.center) * self.gain


class _Constant(Postprocessor):
    requires: ClassVar[frozenset[str]] = frozenset({"x"})
    search_space: ClassVar[dict] = {"a": [3, 1, 2]}
    paper: ClassVar[str] = "test"

    def __init__(self, a: int = 2):
        self.a = a

    def score(self, features):
        return np.asarray(features["x"], dtype=np.float64)  # independent of `a`: every grid point ties


def _x(values, name):
    return Features({"x": np.asarray(values, dtype=np.float64)}, {}, name)


@pytest.fixture
def val_sets():
    r = np.random.default_rng(0)
    id_val = _x(2.0 + 0.5 * r.standard_normal(200), "id_val")
    ood = {"far": _x(6.0 + r.standard_normal(200), "far"), "near": _x(0.5 + r.standard_normal(200), "near")}
    return id_val, ood


def test_grid_is_itertools_product_in_declared_key_order():
    assert search_grid({"a": [1, 2], "b": [3, 4]}) == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3},
                                                       {"a": 2, "b": 4}]
    assert search_grid({}) == [{}]


def test_picks_best_mean_auroc_and_sets_it(val_sets):
    id_val, ood = val_sets
    pp = _Distance()
    best, trials = aps(pp, _x([0.0], "fit"), id_val, ood)
    assert [t["params"] for t in trials] == search_grid(_Distance.search_space)
    for t in trials:  # independent check of every trial with sklearn
        ids = -np.abs(id_val["x"] - t["params"]["center"]) * t["params"]["gain"]
        per = {}
        for name, f in ood.items():
            oods = -np.abs(f["x"] - t["params"]["center"]) * t["params"]["gain"]
            per[name] = roc_auc_score(np.r_[np.ones(len(ids)), np.zeros(len(oods))], np.r_[ids, oods])
        assert t["auroc_per_set"] == pytest.approx(per, abs=1e-12)
        assert t["auroc"] == pytest.approx(np.mean(list(per.values())), abs=1e-12)
    # center=2 is best; gain does not change the ranking, so the first gain (1.0) wins the tie
    assert best == {"center": 2.0, "gain": 1.0}
    assert max(t["auroc"] for t in trials) == next(t["auroc"] for t in trials if t["params"] == best)
    assert pp.get_params() == best and pp.fitted_center_ == 2.0  # returned values are the ones set
    # fit ran once per center (gain is not a fit parameter) plus once to restore the chosen point
    assert pp.fits_ == 3 + 1


def test_ties_go_to_the_first_grid_point(val_sets):
    id_val, ood = val_sets
    pp = _Constant()
    best, trials = aps(pp, None, id_val, ood)
    assert len({t["auroc"] for t in trials}) == 1
    assert best == {"a": 3} and pp.a == 3


def test_accepts_single_set_and_list(val_sets):
    id_val, ood = val_sets
    best1, trials1 = aps(_Distance(), None, id_val, ood["far"])
    assert list(trials1[0]["auroc_per_set"]) == ["far"]
    best2, trials2 = aps(_Distance(), None, id_val, list(ood.values()))
    assert list(trials2[0]["auroc_per_set"]) == ["far", "near"]
    with pytest.raises(ValueError):
        aps(_Distance(), None, id_val, [])


def test_real_postprocessor_sweep_reads_features_only(classifier_splits):
    """ReAct over its grid: refits per percentile, scores from features, does not touch the feature arrays."""
    pp = get("postprocessors", "react")()
    before = {k: v.copy() for k, v in classifier_splits["fit"].arrays.items()}
    best, trials = aps(pp, classifier_splits["fit"], classifier_splits["id"], {"ood": classifier_splits["ood"]})
    assert [t["params"]["percentile"] for t in trials] == [85, 90, 95, 99]
    assert best["percentile"] in (85, 90, 95, 99) and pp.percentile == best["percentile"]
    expected = get("postprocessors", "react")(percentile=best["percentile"]).fit(classifier_splits["fit"])
    assert pp.threshold_ == expected.threshold_
    for k, v in before.items():
        np.testing.assert_array_equal(classifier_splits["fit"].arrays[k], v)


def test_knn_builds_its_index_once(classifier_splits, monkeypatch):
    from oodbench.postprocessors import knn as knn_mod

    calls = []
    real = knn_mod.build_index
    monkeypatch.setattr(knn_mod, "build_index", lambda bank: calls.append(1) or real(bank))
    pp = get("postprocessors", "knn")()
    best, trials = aps(pp, classifier_splits["fit"], classifier_splits["id"], classifier_splits["ood"])
    assert len(trials) == 5 and len(calls) == 1
    assert best == {"k": 50}  # larger k than the 300-sample bank's classes hold blurs the classes
