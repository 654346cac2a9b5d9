"""Mean ± std of sweep results (one row per grid point, method and score; per OOD set) and their tables: the
terminal table, CSV and Markdown that ``oodbench run --seeds`` and ``oodbench sweep`` print and write.

Standard deviations are population std (``numpy.std``, ddof 0), as OpenOOD's ``eval_ood.py`` prints them. A group of
one run of a test-time score shows the std over that run's declared stream orders instead (its metrics are already
the mean over the orders); a group of several seeds shows the std over the seeds of those means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from oodbench.results.runs import order_std, stream_of

AGG_METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")
# ``results`` below are :class:`oodbench.orchestration.sweep.SweepResult` s (the floor above; not imported)


@dataclass
class AggregateRow:
    """Mean and population std over seeds of one (point, method, postprocessor)'s metrics, per OOD set."""

    point: str
    method: str
    method_label: str
    postprocessor: str
    post_label: str
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    mean: dict[str, dict[str, float]]  # set -> metric -> mean (fraction)
    std: dict[str, dict[str, float]]
    id_accuracy: tuple[float, float] | None = None
    spread: str = "seeds"  # what ``std`` is over: "seeds", or "stream orders" (one run of a test-time score)
    n_spread: int = 0  # how many values the std is over (seeds or orders)


def aggregate(results: Sequence["SweepResult"], metrics: Sequence[str] = AGG_METRICS) -> list[AggregateRow]:
    """Group the runs by (point, method, postprocessor) and average each metric of each OOD set over the seeds."""
    groups: dict[tuple, list] = {}  # SweepResult (oodbench.orchestration.sweep) of each group
    for r in results:
        rec = r.record
        method_key = r.point.label if not _is_baseline(r.result.method) else "(any)"
        key = (method_key, r.result.method, r.result.postprocessor,  # params as JSON: lists (AdaNeg's seeds) too
               json.dumps(rec.postprocessor.get("params") or {}, sort_keys=True, default=str))
        groups.setdefault(key, []).append(r)
    rows = []
    for (point, method, post, _), rs in groups.items():
        sets = list(dict.fromkeys(n for r in rs for n in r.record.metrics))
        mean, std = {}, {}
        for name in sets:
            mean[name], std[name] = {}, {}
            for m in metrics:
                vals = [r.record.metrics.get(name, {}).get(m) for r in rs]
                if any(v is None for v in vals):
                    continue
                mean[name][m] = float(np.mean(vals))
                std[name][m] = float(np.std(vals))
        accs = [r.record.id_accuracy for r in rs]
        acc = (float(np.mean(accs)), float(np.std(accs))) if all(a is not None for a in accs) else None
        first = rs[0].record
        spread, n_spread = "seeds", len(rs)
        if len(rs) == 1 and stream_of(first) is not None:
            spread, n_spread = "stream orders", len(stream_of(first)["per_order"])
            std = {name: {m: sd for m in vals if (sd := order_std(first, name, m)) is not None}
                   for name, vals in mean.items()}
        params = ", ".join(f"{k}={v}" for k, v in sorted((first.postprocessor.get("params") or {}).items()))
        rows.append(AggregateRow(point, method, first.plan.get("display_name", method), post,
                                 first.postprocessor.get("display_name", post) + (f" ({params})" if params else ""),
                                 tuple(r.seed for r in rs), tuple(r.record.run_id for r in rs), mean, std, acc,
                                 spread, n_spread))
    return rows


def _is_baseline(method: str) -> bool:
    from oodbench.method import method_class

    try:
        return method_class(method).baseline
    except Exception:  # an unregistered name in a record: treat as a method
        return False


def fmt_mean_std(mean: float | None, std: float | None, n: int) -> str:
    """``"38.77 ± 0.22"`` (x100, 2 decimals; no ± for a single seed)."""
    if mean is None:
        return "missing"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if n > 1 and std is not None else "")


def aggregate_table(rows: Sequence[AggregateRow], metrics: Sequence[str] = ("fpr95", "auroc"), title: str = ""):
    """A rich table: one line per (point, method, postprocessor), the average over OOD sets as ``mean ± std``
    per metric, the seeds, and ID accuracy."""
    from rich.table import Table

    from oodbench.reporting.render import HEADERS

    table = Table(title=title or "Sweep: average over OOD sets, mean ± std over seeds (x100)", title_justify="left",
                  caption="FPR95: ID positive, nearest recall to 95%; std: population (numpy.std)" + _orders_note(rows),
                  caption_justify="left")
    for col in ("point", "method", "score"):  # labels wrap (point: one axis per line) or fold, never cut
        table.add_column(col, overflow="fold")
    for m in metrics:  # numbers: never wrapped nor cut (oodbench.console.print_table splits a too-wide table)
        table.add_column(HEADERS.get(m, m), justify="right", no_wrap=True)
    table.add_column("ID acc", justify="right", no_wrap=True)
    table.add_column("seeds", justify="right", overflow="fold")
    for r in rows:
        avg_m, avg_s = r.mean.get("average", {}), r.std.get("average", {})
        n = r.n_spread or len(r.seeds)
        acc = fmt_mean_std(r.id_accuracy[0], r.id_accuracy[1], len(r.seeds)) if r.id_accuracy else ""
        table.add_row(r.point, r.method_label, r.post_label, *(fmt_mean_std(avg_m.get(m), avg_s.get(m), n)
                                                               for m in metrics), acc,
                      ",".join(map(str, r.seeds)))
    return table


def aggregate_csv(rows: Sequence[AggregateRow], metrics: Sequence[str] = AGG_METRICS) -> str:
    """Long CSV: point, method, postprocessor, OOD set, metric, mean, std (x100), n seeds, seeds (and
    ``std_over``: ``seeds`` or ``stream orders``)."""
    import io

    from oodbench.reporting.escape import csv_writer

    buf = io.StringIO()
    w = csv_writer(buf)  # labels from run fields: formula-like text escaped
    w.writerow(["point", "method", "postprocessor", "ood_set", "metric", "mean", "std", "n", "seeds", "std_over"])
    for r in rows:
        for name, vals in r.mean.items():
            for m in metrics:
                if m in vals:
                    std = r.std.get(name, {}).get(m)
                    w.writerow([r.point, r.method, r.postprocessor, name, m, f"{100 * vals[m]:.4f}",
                                "" if std is None else f"{100 * std:.4f}", len(r.seeds), " ".join(map(str, r.seeds)),
                                r.spread])
    return buf.getvalue()


def aggregate_markdown(rows: Sequence[AggregateRow], metrics: Sequence[str] = ("fpr95", "auroc")) -> str:
    from oodbench.reporting.escape import md_cell
    from oodbench.reporting.render import HEADERS

    lines = ["| point | method | score | " + " | ".join(HEADERS.get(m, m) for m in metrics) + " | ID acc | seeds |",
             "|:--|:--|:--|" + "--:|" * (len(metrics) + 1) + ":--|"]
    for r in rows:
        avg_m, avg_s = r.mean.get("average", {}), r.std.get("average", {})
        n = r.n_spread or len(r.seeds)
        acc = fmt_mean_std(r.id_accuracy[0], r.id_accuracy[1], len(r.seeds)) if r.id_accuracy else ""
        lines.append(f"| {md_cell(r.point)} | {md_cell(r.method_label)} | {md_cell(r.post_label)} | "
                     + " | ".join(fmt_mean_std(avg_m.get(m), avg_s.get(m), n) for m in metrics)
                     + f" | {acc} | {','.join(map(str, r.seeds))} |")
    lines += ["", "Average over the OOD sets, x100; mean ± population std over the seeds. FPR95: ID positive, nearest "
                  "recall to 95%." + _orders_note(rows)]
    return "\n".join(lines) + "\n"


def _orders_note(rows: Sequence[AggregateRow]) -> str:
    if not any(r.spread == "stream orders" for r in rows):
        return ""
    return ("; a test-time score of one seed: mean ± population std over its stream orders (`oodbench runs show` "
            "names them)")
