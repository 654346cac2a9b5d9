"""The postprocessor contract: a small, scikit-learn-shaped class over cached features.

* ``__init__`` only stores hyperparameters (explicit keyword arguments with defaults, no logic).
* ``fit(features, encoder=None)`` learns ID statistics where the method needs them and returns ``self``;
  learned state lives in attributes ending in ``_``. ``features`` is the ID fit split (see ``fit_on``);
  ``encoder`` is a text encoder for methods that embed new words (NegLabel mining): any object with
  ``encode_text(list[str]) -> np.ndarray [N, D]`` and a ``cache_key`` string.
* ``score(features) -> np.ndarray [N]`` (float64), **higher = more in-distribution**. It never runs a network,
  never mutates its input or itself.
* ``requires``: feature names it reads (see :mod:`oodbench.features.featureset`); ``search_space``: the APS grid.
* ``test_time = True`` declares a score that adapts to the test stream (AdaNeg): its state evolves batch by batch,
  so a score depends on what came before it. It implements ``score_stream(batches)`` (one stream, fed in order
  from a fresh state, nothing kept afterwards) and ``stream_protocol()`` (order seeds, batch size); the benchmark
  then feeds it the declared streams of :mod:`oodbench.stream` instead of scoring each split on its own.

A postprocessor never imports a backbone.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Iterable

import numpy as np

from oodbench.errors import IncompatibleError
from oodbench.features import Features


class Postprocessor:
    """Base class of every registered postprocessor."""

    requires: ClassVar[frozenset[str]] = frozenset()
    search_space: ClassVar[dict[str, list[Any]]] = {}
    # None: no fit needed; "id_fit": the benchmark's ID fit split; "shared": fit reads only model-level
    # entries (e.g. ``class_names``), so the features of any split will do.
    fit_on: ClassVar[str | None] = None
    # Hyperparameters that ``fit`` reads. APS refits only when one of them changes; None = refit on any change.
    fit_params: ClassVar[frozenset[str] | None] = None
    needs_encoder: ClassVar[bool] = False
    paper: ClassVar[str] = ""
    registry_name: ClassVar[str] = ""
    # The name tables and messages show ("GL-MCM"); the registry name is what users type ("glmcm").
    display_name: ClassVar[str] = ""
    # Backbone kinds ("clip", "classifier") for which `oodbench run` uses this score when --post is not given
    # (a benchmark may declare its own default_postprocessors instead).
    default_for: ClassVar[frozenset[str]] = frozenset()
    # True: the score adapts to the test stream; see ``score_stream`` and :mod:`oodbench.stream`.
    test_time: ClassVar[bool] = False

    # ----------------------------------------------------------------------------- parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:  # no __init__ of its own: a score without hyperparameters
            return []
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise IncompatibleError(f"postprocessor {cls.__name__}: __init__ must list its hyperparameters as "
                                        "keyword arguments with defaults (no *args/**kwargs)")
            names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self._param_names()}

    def set_params(self, **params: Any) -> "Postprocessor":
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__}: invalid parameter '{k}'; valid: {', '.join(valid) or 'none'}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------------------ interface
    def fit(self, features: Features | None = None, encoder: Any = None) -> "Postprocessor":
        return self

    def score(self, features: Features) -> np.ndarray:
        raise NotImplementedError

    def score_stream(self, batches: Iterable[Features]) -> list[np.ndarray]:
        """Test-time scores only: the scores (float64 ``[n_b]``) of each batch of one stream, fed in order from a
        fresh state; the object itself is left unchanged."""
        raise NotImplementedError(f"{type(self).__name__} is not a test-time score (test_time = False)")

    def stream_protocol(self) -> dict[str, Any]:
        """Test-time scores only: ``{"seeds": [int, ...], "batch_size": int}``, the stream orders and batch size the
        benchmark feeds (see :mod:`oodbench.stream`)."""
        raise NotImplementedError(f"{type(self).__name__} is not a test-time score (test_time = False)")

    def feature_warnings(self, features: Features) -> list[str]:
        """Reasons this score is meaningless on ``features`` (e.g. ASH on signed features); shown as warnings."""
        return []

    # -------------------------------------------------------------------------------- helpers
    @classmethod
    def title(cls) -> str:
        """Display name (``display_name``, else the registry name)."""
        return cls.display_name or cls.registry_name or cls.__name__

    @classmethod
    def check_compatible(cls, available: set[str] | frozenset[str], backbone: str = "this backbone") -> None:
        """Raise :class:`IncompatibleError` naming the features ``available`` lacks."""
        # labels, class names and the prompt come from the benchmark, not the backbone
        missing = set(cls.requires) - set(available) - {"labels", "class_names", "prompt"}
        if missing:
            raise IncompatibleError(
                f"postprocessor '{cls.registry_name or cls.__name__}' needs {', '.join(sorted(missing))}, "
                f"which {backbone} does not produce (it gives {', '.join(sorted(available))})"
            )

    def _check_fitted(self, *attrs: str) -> None:
        if any(getattr(self, a, None) is None for a in attrs):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() on ID features first")
