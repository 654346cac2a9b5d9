"""Build results stores in tests: runs with real scores and metrics computed from them."""

from __future__ import annotations

import numpy as np

from oodbench.metrics import evaluate
from oodbench.results import ResultsStore, RunRecord


def synthetic_scores(seed: int, shift: float = 1.0, sets=("near", "far"), n_id: int = 120, n_ood: int = 90,
                     decimals: int | None = None) -> dict[str, np.ndarray]:
    """``{"id": ..., "ood/<set>": ...}``; OOD set k is centred ``shift * (k + 1)`` below the ID scores.
    ``decimals`` rounds the scores (to create ties)."""
    rng = np.random.default_rng(seed)
    scores = {"id": rng.normal(2.0, 1.0, n_id)}
    for k, name in enumerate(sets):
        scores[f"ood/{name}"] = rng.normal(2.0 - shift * (k + 1), 1.0 + 0.3 * k, n_ood + 7 * k)
    if decimals is not None:
        scores = {k: np.round(v, decimals) for k, v in scores.items()}
    return scores


def save_run(store: ResultsStore, scores: dict[str, np.ndarray], *, benchmark="bench", backbone="clip_b16",
             method="none", post="mcm", params=None, time="", plan=None, groups=None, run_id="") -> str:
    """Store one run whose metrics are computed from ``scores``; returns its id."""
    ood = {k.removeprefix("ood/"): v for k, v in scores.items() if k.startswith("ood/")}
    rows = evaluate(scores["id"], ood)
    rec = RunRecord(
        benchmark=benchmark, id_set="idset", ood_sets={n: (groups or {}).get(n, "far") for n in ood},
        backbone={"name": backbone, "pretrained": None, "weights_hash": "w0"},
        plan=plan or {"name": method, "hash": "none"},
        postprocessor={"name": post, "params": dict(params or {})},
        metrics=rows, counts={"id": len(scores["id"]), "ood": {n: len(v) for n, v in ood.items()}, "skipped": {}},
        time=time, run_id=run_id, seed=0, device="cpu",
    )
    return store.save(rec, scores).name
