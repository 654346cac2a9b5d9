"""APS: automatic hyperparameter search of a postprocessor over its ``search_space`` grid.

Follows OpenOOD's ``Evaluator.hyperparam_search`` (``openood/evaluation_api/evaluator.py``), with three
differences that make it cheap and reproducible:

* it reads cached features only — ID fit, ID val and OOD val — and never runs a network, so sweeping a grid
  costs no forward pass;
* the grid is ``itertools.product`` of the ``search_space`` values in declared key order (the *last* key
  varies fastest), and the best mean AUROC over the OOD-val sets wins by strict ``>``, so a tie goes to the
  **first** grid point (OpenOOD's v1.5 evaluator does the same; its legacy evaluator picks the last);
* the chosen values are returned so that they go into the result record (OpenOOD only prints them).

``fit`` is re-run only when a hyperparameter listed in the class's ``fit_params`` changed (all of them when
``fit_params`` is None), e.g. ReAct refits for each percentile, KNN builds its index once for every k.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np

from oodbench.features import Features
from oodbench.metrics import auroc

log = logging.getLogger("oodbench")


def search_grid(search_space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every grid point as a dict, in ``itertools.product`` order over the keys in declared order.

    An empty space gives one empty point (the current hyperparameters are evaluated once).
    """
    keys = list(search_space)
    for k in keys:
        if len(search_space[k]) == 0:
            raise ValueError(f"search space of '{k}' is empty")
    return [dict(zip(keys, values)) for values in itertools.product(*(search_space[k] for k in keys))]


def _named_sets(ood_val_features: Features | Sequence[Features] | Mapping[str, Features]) -> dict[str, Features]:
    if isinstance(ood_val_features, Features):
        sets = {ood_val_features.name or "ood_val": ood_val_features}
    elif isinstance(ood_val_features, Mapping):
        sets = dict(ood_val_features)
    else:
        sets = {(f.name or f"ood_val_{i}"): f for i, f in enumerate(ood_val_features)}
        if len(sets) != len(ood_val_features):  # duplicate names
            sets = {f"ood_val_{i}": f for i, f in enumerate(ood_val_features)}
    if not sets:
        raise ValueError("APS needs at least one OOD-val feature set")
    return sets


def aps(postprocessor: Any, fit_features: Features | None, id_val_features: Features,
        ood_val_features: Features | Sequence[Features] | Mapping[str, Features],
        encoder: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick the grid point of ``postprocessor.search_space`` with the best mean AUROC on the validation sets.

    Args:
        postprocessor: the instance to tune. On return it holds the chosen hyperparameters and is fitted.
        fit_features: what ``fit`` receives (the ID fit split, see ``fit_on``); ignored when ``fit_on`` is None.
        id_val_features: ID validation features.
        ood_val_features: one OOD-val feature set, a list of them, or a ``{name: features}`` mapping.
        encoder: text encoder passed to ``fit`` (NegLabel).

    Returns:
        ``(best_params, trials)``: the chosen values (only the searched keys), and one record per grid point
        in grid order: ``{"params": {...}, "auroc": mean over OOD-val sets, "auroc_per_set": {name: value}}``.
    """
    cls = type(postprocessor)
    grid = search_grid(cls.search_space)
    ood_sets = _named_sets(ood_val_features)
    needs_fit = cls.fit_on is not None
    fit_keys = cls.fit_params

    def fit_state() -> dict[str, Any]:
        params = postprocessor.get_params()
        return params if fit_keys is None else {k: params[k] for k in fit_keys}

    fitted_with: dict[str, Any] | None = None

    def ensure_fitted() -> None:
        nonlocal fitted_with
        if needs_fit and fitted_with != fit_state():
            postprocessor.fit(fit_features, encoder)
            fitted_with = fit_state()

    trials: list[dict[str, Any]] = []
    best_index, best_auroc = 0, -math.inf
    for i, point in enumerate(grid):
        postprocessor.set_params(**point)
        ensure_fitted()
        id_scores = postprocessor.score(id_val_features)
        per_set = {name: float(auroc(id_scores, postprocessor.score(f))) for name, f in ood_sets.items()}
        mean = float(np.mean(list(per_set.values())))
        trials.append({"params": dict(point), "auroc": mean, "auroc_per_set": per_set})
        log.info("aps %s %s: AUROC %.4f", cls.registry_name or cls.__name__, point, mean)
        if mean > best_auroc:  # strict: ties keep the first grid point
            best_index, best_auroc = i, mean
    best = dict(grid[best_index])
    postprocessor.set_params(**best)
    ensure_fitted()
    log.info("aps %s: chose %s (AUROC %.4f)", cls.registry_name or cls.__name__, best, best_auroc)
    return best, trials
