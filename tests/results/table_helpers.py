"""Run records with chosen metrics for the table and figure tests (imported by name: keep the module name unique)."""

from oodbench.results import RunRecord


def record(metrics, *, benchmark="bench", backbone="clip_b", method="none", options=None, post="mcm", params=None,
           seed=0, plan=None, pretrained="openai", time="2026-01-01T00:00:00+00:00", run_id="", acc=None, aps=None,
           precision="fp32"):
    """A run record with the given metrics (fractions) — no metric code involved."""
    plan = dict(plan or {"name": method, "hash": "none" if method == "none" else "h"})
    plan.setdefault("name", method)
    plan["method"] = {"name": method, "options": dict(options or {})}
    defaults = {"mcm": {"tau": 1.0}, "glmcm": {"tau": 1.0, "lambda_local": 1.0}, "energy": {"temperature": 1.0}}
    return RunRecord(benchmark=benchmark, id_set="id", ood_sets={k: "far" for k in metrics if k != "average"},
                     backbone={"name": backbone, "pretrained": pretrained, "weights_hash": "w"}, plan=plan,
                     postprocessor={"name": post, "params": {**defaults.get(post, {}), **(params or {})}, "aps": aps},
                     metrics=metrics, counts={"id": 10, "ood": {}}, seed=seed, time=time, run_id=run_id,
                     id_accuracy=acc, precision=precision)
