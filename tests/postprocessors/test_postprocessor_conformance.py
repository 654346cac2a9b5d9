"""Conformance suite run over EVERY registered postprocessor (a new plugin is covered without a new test).

Checks, in the spirit of scikit-learn's estimator checks: fit returns self; fitting twice gives the same
scores; scoring mutates neither its input nor the object; scores do not depend on batch size or order;
higher = ID on an easy case; get_params/set_params round-trip; float64 output of shape [N]; invalid pairings
are refused naming the missing features.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest

from oodbench.errors import IncompatibleError
from oodbench.metrics import auroc
from oodbench.registry import get, names

ALL = names("postprocessors")


def test_builtins_are_registered():
    expected = {"mcm", "glmcm", "neglabel", "msp", "energy", "maxlogit", "react", "dice", "ash_p", "ash_b",
                "ash_s", "knn"}
    assert expected <= set(ALL)


@pytest.fixture
def setup(request, clip_splits, classifier_splits, fake_encoder):
    """(class, splits, encoder) for the postprocessor named by the test parameter."""
    cls = get("postprocessors", request.param)
    for splits in (clip_splits, classifier_splits):
        if cls.requires <= splits["id"].names():
            return cls, splits, fake_encoder
    pytest.skip(f"no conformance fixture provides {sorted(cls.requires)}")  # only for third-party plugins


def _fitted(cls, splits, encoder, **params):
    pp = cls(**params)
    out = pp.fit(splits["fit"], encoder)
    return pp, out


def _snapshot(obj):
    return copy.deepcopy({k: v for k, v in vars(obj).items() if not _is_opaque(v)})


def _is_opaque(v):  # native handles (faiss indexes) cannot be deep-copied; identity is compared instead
    return type(v).__module__.split(".")[0] in {"faiss"}


def _assert_same(a, b, path="obj"):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
        assert np.asarray(a).dtype == np.asarray(b).dtype, path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


param = pytest.mark.parametrize("setup", ALL, indirect=True)


@param
def test_metadata(setup):
    cls, _, _ = setup
    params = cls._param_names()
    assert cls.requires, "a postprocessor must declare the features it reads"
    assert set(cls.search_space) <= set(params), "search_space keys must be hyperparameters"
    assert cls.fit_params is None or set(cls.fit_params) <= set(params)
    assert cls.paper, "cite the paper in the `paper` class attribute"
    assert cls.fit_on in (None, "id_fit", "shared")
    sig = inspect.signature(cls.__init__)
    assert all(p.default is not inspect.Parameter.empty for n, p in sig.parameters.items() if n != "self"), \
        "every hyperparameter needs a default"


@param
def test_fit_returns_self_and_output_is_float64_n(setup):
    cls, splits, enc = setup
    pp, out = _fitted(cls, splits, enc)
    assert out is pp
    s = pp.score(splits["id"])
    assert isinstance(s, np.ndarray) and s.dtype == np.float64 and s.shape == (len(splits["id"]),)
    assert np.all(np.isfinite(s))


@param
def test_fitting_twice_gives_the_same_scores(setup):
    cls, splits, enc = setup
    pp, _ = _fitted(cls, splits, enc)
    first = pp.score(splits["ood"])
    pp.fit(splits["fit"], enc)
    np.testing.assert_array_equal(pp.score(splits["ood"]), first)
    other, _ = _fitted(cls, splits, enc)
    np.testing.assert_array_equal(other.score(splits["ood"]), first)


@param
def test_score_mutates_neither_input_nor_object(setup):
    cls, splits, enc = setup
    pp, _ = _fitted(cls, splits, enc)
    feats = splits["id"]
    arrays_before = copy.deepcopy(feats.arrays)
    shared_before = copy.deepcopy(feats.shared)
    state_before = _snapshot(pp)
    opaque_before = {k: v for k, v in vars(pp).items() if _is_opaque(v)}
    pp.score(feats)
    pp.score(splits["ood"])
    _assert_same(feats.arrays, arrays_before, "arrays")
    _assert_same(feats.shared, shared_before, "shared")
    _assert_same(_snapshot(pp), state_before, "postprocessor")
    assert {k: v for k, v in vars(pp).items() if _is_opaque(v)}.keys() == opaque_before.keys()
    assert all(vars(pp)[k] is v for k, v in opaque_before.items())


@param
def test_scores_do_not_depend_on_batch_size_or_order(setup):
    cls, splits, enc = setup
    pp, _ = _fitted(cls, splits, enc)
    from oodbench.features import Features

    both = Features.concat([splits["id"], splits["ood"]])
    full = pp.score(both)
    perm = np.random.default_rng(3).permutation(len(both))
    for idx in (perm[: len(perm) // 2], perm[:1], perm):
        np.testing.assert_allclose(pp.score(both.subset(idx)), full[idx], rtol=1e-6, atol=1e-9)


@param
def test_orientation_higher_is_id(setup):
    cls, splits, enc = setup
    pp, _ = _fitted(cls, splits, enc)
    value = auroc(pp.score(splits["id"]), pp.score(splits["ood"]))
    assert value > 0.9, f"{cls.registry_name}: AUROC {value:.3f} on an easy case (higher must mean ID)"


@param
def test_get_set_params_round_trip(setup):
    cls, splits, enc = setup
    pp = cls()
    params = pp.get_params()
    assert cls(**params).get_params() == params
    assert pp.set_params(**params) is pp
    for key, values in cls.search_space.items():
        pp.set_params(**{key: values[-1]})
        assert pp.get_params()[key] == values[-1]
    with pytest.raises(ValueError, match="invalid parameter"):
        pp.set_params(not_a_hyperparameter=1)


@param
def test_incompatible_pairing_names_missing_features(setup):
    cls, splits, _ = setup
    available = splits["id"].names() - set(cls.requires)
    missing = sorted(set(cls.requires) - {"labels", "class_names", "prompt"})  # these come from the benchmark
    if missing:
        with pytest.raises(IncompatibleError) as err:
            cls.check_compatible(available, "test_backbone")
        assert all(m in str(err.value) for m in missing)
    cls.check_compatible(splits["id"].names())  # the full set is accepted
