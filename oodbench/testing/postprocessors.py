"""Conformance checks of postprocessors (scores over cached features), in the spirit of scikit-learn's estimator
checks.

Each check takes the postprocessor **class**: fit returns self; fitting twice gives the same scores; scoring
mutates neither its input nor the object; scores do not depend on batch size or order; higher = ID on an easy
case; ``get_params`` / ``set_params`` round-trip; float64 output of shape ``[N]``; metadata (``requires``,
``search_space``, ``paper``, defaults for every hyperparameter); invalid pairings are refused naming the missing
features.

Inputs are the synthetic feature sets of :mod:`oodbench.testing.fixtures` (CLIP: ``image local logits text
logit_scale``; classifier: ``penultimate logits fc_weight fc_bias``; both: ``labels class_names``, CLIP also
``prompt``) and, for scores that embed words, a :class:`~oodbench.testing.fixtures.FakeTextEncoder`. A
postprocessor that requires features neither set provides gets the checks that need no input, and the others
are skipped with the reason.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Iterator

import numpy as np
import pytest

from oodbench.errors import IncompatibleError
from oodbench.features import Features
from oodbench.metrics import auroc

from . import Check
from .fixtures import FakeTextEncoder, splits_providing

#: Easy-case AUROC a score must exceed (ID and OOD are far apart in the synthetic sets).
MIN_EASY_AUROC = 0.9
#: Feature names that come from the benchmark, not from the backbone (never "missing" in a pairing).
BENCHMARK_NAMES = frozenset({"labels", "class_names", "prompt"})


def registered() -> list[type]:
    from oodbench.registry import get, names

    return [get("postprocessors", n) for n in names("postprocessors")]


def object_id(cls: type) -> str:
    return getattr(cls, "registry_name", "") or cls.__name__


def checks_for(cls: type) -> Iterator[Check]:
    yield Check(check_metadata)
    yield Check(check_get_set_params_round_trip)
    for func in (check_fit_returns_self_and_output_is_float64_n, check_fitting_twice_gives_the_same_scores,
                 check_score_mutates_neither_input_nor_object, check_scores_do_not_depend_on_batch_size_or_order,
                 check_orientation_higher_is_id, check_incompatible_pairing_names_missing_features):
        yield Check(func)


# ------------------------------------------------------------------------------------------------ helpers
def _inputs(cls: type) -> dict[str, Features]:
    splits = splits_providing(cls.requires)
    if splits is None:
        pytest.skip(f"{object_id(cls)}: no synthetic feature set provides {sorted(cls.requires)}")
    return splits


def _fitted(cls: type, splits: dict[str, Features], **params: Any):
    pp = cls(**params)
    return pp, pp.fit(splits["fit"], FakeTextEncoder())


def _is_opaque(value: Any) -> bool:
    """Native handles (faiss indexes) cannot be deep-copied; their identity is compared instead."""
    return type(value).__module__.split(".")[0] in {"faiss"}


def _snapshot(obj: Any) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(obj).items() if not _is_opaque(v)})


def assert_same(a: Any, b: Any, path: str = "obj") -> None:
    """Recursive equality of nested dicts / lists / arrays (arrays: same values and dtype)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
        assert np.asarray(a).dtype == np.asarray(b).dtype, path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


# ------------------------------------------------------------------------------------------------- checks
def check_metadata(cls: type) -> None:
    """``requires`` declared, ``search_space`` / ``fit_params`` name hyperparameters, ``paper`` cited, ``fit_on``
    valid, every hyperparameter has a default."""
    params = cls._param_names()
    assert cls.requires, "a postprocessor must declare the features it reads (`requires`)"
    assert set(cls.search_space) <= set(params), "search_space keys must be hyperparameters"
    assert cls.fit_params is None or set(cls.fit_params) <= set(params), "fit_params must be hyperparameters"
    assert cls.paper, "cite the paper in the `paper` class attribute"
    assert cls.fit_on in (None, "id_fit", "shared"), f"fit_on must be None, 'id_fit' or 'shared', not {cls.fit_on!r}"
    sig = inspect.signature(cls.__init__)
    no_default = [n for n, p in sig.parameters.items() if n != "self" and p.default is inspect.Parameter.empty]
    assert not no_default, f"every hyperparameter needs a default: {no_default}"


def check_fit_returns_self_and_output_is_float64_n(cls: type) -> None:
    """``fit`` returns the object; ``score`` gives finite float64 of shape ``[N]``."""
    splits = _inputs(cls)
    pp, out = _fitted(cls, splits)
    assert out is pp, "fit must return self"
    s = pp.score(splits["id"])
    assert isinstance(s, np.ndarray), f"score must return a numpy array, got {type(s).__name__}"
    assert s.dtype == np.float64 and s.shape == (len(splits["id"]),), f"score gave {s.dtype} {s.shape}"
    assert np.all(np.isfinite(s)), "scores must be finite"


def check_fitting_twice_gives_the_same_scores(cls: type) -> None:
    """Refitting the same object, and fitting a second object, give identical scores."""
    splits = _inputs(cls)
    pp, _ = _fitted(cls, splits)
    first = pp.score(splits["ood"])
    pp.fit(splits["fit"], FakeTextEncoder())
    np.testing.assert_array_equal(pp.score(splits["ood"]), first, err_msg="refit changed the scores")
    other, _ = _fitted(cls, splits)
    np.testing.assert_array_equal(other.score(splits["ood"]), first, err_msg="a second fitted object scores differently")


def check_score_mutates_neither_input_nor_object(cls: type) -> None:
    """``score`` leaves the feature arrays, the shared entries and the object's state untouched."""
    splits = _inputs(cls)
    pp, _ = _fitted(cls, splits)
    feats = splits["id"]
    arrays_before = copy.deepcopy(feats.arrays)
    shared_before = copy.deepcopy(feats.shared)
    state_before = _snapshot(pp)
    opaque_before = {k: v for k, v in vars(pp).items() if _is_opaque(v)}
    pp.score(feats)
    pp.score(splits["ood"])
    assert_same(feats.arrays, arrays_before, "arrays")
    assert_same(feats.shared, shared_before, "shared")
    assert_same(_snapshot(pp), state_before, "postprocessor")
    assert {k: v for k, v in vars(pp).items() if _is_opaque(v)}.keys() == opaque_before.keys()
    assert all(vars(pp)[k] is v for k, v in opaque_before.items())


def check_scores_do_not_depend_on_batch_size_or_order(cls: type) -> None:
    """A sample's score is the same in any subset (half, single sample, permutation) of the data."""
    splits = _inputs(cls)
    pp, _ = _fitted(cls, splits)
    both = Features.concat([splits["id"], splits["ood"]])
    full = pp.score(both)
    if getattr(cls, "test_time", False):  # adapts to the stream: the order is part of its input (oodbench.stream)
        np.testing.assert_array_equal(pp.score(both), full, err_msg="the same stream must give the same scores")
        return
    perm = np.random.default_rng(3).permutation(len(both))
    for idx in (perm[: len(perm) // 2], perm[:1], perm):
        np.testing.assert_allclose(pp.score(both.subset(idx)), full[idx], rtol=1e-6, atol=1e-9)


def check_orientation_higher_is_id(cls: type) -> None:
    """On an easy case, ID samples score higher than OOD ones (AUROC above :data:`MIN_EASY_AUROC`)."""
    splits = _inputs(cls)
    pp, _ = _fitted(cls, splits)
    value = auroc(pp.score(splits["id"]), pp.score(splits["ood"]))
    assert value > MIN_EASY_AUROC, f"{object_id(cls)}: AUROC {value:.3f} on an easy case (higher must mean ID)"


def check_get_set_params_round_trip(cls: type) -> None:
    """``cls(**get_params())`` has the same params; ``set_params`` returns self, sets every search-space value,
    and refuses unknown names."""
    pp = cls()
    params = pp.get_params()
    assert cls(**params).get_params() == params
    assert pp.set_params(**params) is pp
    for key, values in cls.search_space.items():
        pp.set_params(**{key: values[-1]})
        assert pp.get_params()[key] == values[-1], key
    with pytest.raises(ValueError, match="invalid parameter"):
        pp.set_params(not_a_hyperparameter=1)


def check_incompatible_pairing_names_missing_features(cls: type) -> None:
    """Features without what the score requires are refused with an IncompatibleError naming each missing one."""
    splits = _inputs(cls)
    available = splits["id"].names() - set(cls.requires)
    missing = sorted(set(cls.requires) - BENCHMARK_NAMES)
    if missing:
        with pytest.raises(IncompatibleError) as err:
            cls.check_compatible(available, "test_backbone")
        absent = [m for m in missing if m not in str(err.value)]
        assert not absent, f"the error does not name {absent}: {err.value}"
    cls.check_compatible(splits["id"].names())  # the full set is accepted
