"""The leaderboard: one row per backbone x method x postprocessor x hyperparameters, built from stored runs.

Rows are grouped by (benchmark, backbone name, backbone weights, method, plan hash, postprocessor, postprocessor
hyperparameters). Each row shows one run of its group: by default the **latest** (by stored time), with
``pick="best"`` the best by the ranking metric (lowest FPR95 / highest AUROC). Rows are ranked by the average
of the ranking metric over the run's OOD sets. Values are x100 with 2 decimals (CSV: 4 decimals).

Three files are written: ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.html``. The HTML page is
self-contained (inline CSS and JavaScript, nothing loaded from elsewhere): clicking a column header sorts by it,
and a URL hash ``#sort=KEY`` (best first), ``#sort=KEY:asc`` or ``#sort=KEY:desc`` sorts on load, e.g.
``leaderboard.html#sort=auroc`` or ``#sort=fpr95@iNaturalist``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodbench.atomic import write_text
from oodbench.errors import UserError
from oodbench.hashing import canonical_json
from oodbench.metrics import CONVENTIONS
from oodbench.results.plots import figure_paths
from oodbench.results.runs import StoredRun, list_runs, ood_set_names, params_text
from oodbench.results.store import ResultsStore

RANK_METRICS = {"fpr95": "lower", "auroc": "higher"}
PICKS = ("latest", "best")
AVG_COLUMNS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"), ("aupr_in", "AUPR-In↑"))
SET_METRICS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"))
FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.html")


@dataclass(frozen=True)
class Row:
    """One leaderboard row: the run shown and how many runs its group holds."""

    run: StoredRun
    n_runs: int
    rank: int
    same_sets: bool  # averaged over the same OOD sets as most rows of its benchmark

    @property
    def record(self):
        return self.run.record

    def hyper(self) -> str:
        rec = self.record
        parts = [params_text(rec.postprocessor.get("params"))]
        if rec.plan.get("hash") and rec.plan.get("hash") != "none":
            parts.append(f"plan {str(rec.plan['hash'])[:8]}")
        if rec.backbone.get("pretrained"):
            parts.append(f"weights {rec.backbone['pretrained']}")
        return "; ".join(p for p in parts if p)

    def value(self, metric: str, ood_set: str = "average") -> float | None:
        return self.record.metrics.get(ood_set, {}).get(metric)


def group_key(run: StoredRun) -> tuple:
    rec = run.record
    return (rec.benchmark, rec.backbone.get("name"), str(rec.backbone.get("pretrained")), rec.method,
            str(rec.plan.get("hash")), rec.postprocessor.get("name"), canonical_json(rec.postprocessor.get("params") or {}))


def _score(metric: str, run: StoredRun) -> float:
    v = run.record.metrics.get("average", {}).get(metric)
    if v is None:
        return float("inf")
    return v if RANK_METRICS[metric] == "lower" else -v


def build(store: ResultsStore, benchmark: str | None = None, metric: str = "fpr95",
          pick: str = "latest") -> dict[str, list[Row]]:
    """Leaderboard rows per benchmark, ranked by the average ``metric`` (best first).

    Raises:
        UserError: unknown metric or pick rule, or no stored run matches.
    """
    if metric not in RANK_METRICS:
        raise UserError(f"--metric must be one of {', '.join(RANK_METRICS)}, got '{metric}'")
    if pick not in PICKS:
        raise UserError(f"--pick must be one of {', '.join(PICKS)}, got '{pick}'")
    runs = list_runs(store, benchmark=benchmark)  # newest first
    if not runs:
        where = f" of benchmark '{benchmark}'" if benchmark else ""
        raise UserError(f"no stored runs{where} under {store.root}; run `oodbench run` or `oodbench runs import` first")
    groups: dict[tuple, list[StoredRun]] = {}
    for r in runs:
        groups.setdefault(group_key(r), []).append(r)
    by_bench: dict[str, list[tuple[StoredRun, int]]] = {}
    for key, members in groups.items():
        chosen = members[0] if pick == "latest" else min(members, key=lambda r: (_score(metric, r), -_time(r)))
        by_bench.setdefault(key[0], []).append((chosen, len(members)))
    other = "auroc" if metric == "fpr95" else "fpr95"
    out: dict[str, list[Row]] = {}
    for bench in sorted(by_bench):
        items = sorted(by_bench[bench], key=lambda t: (_score(metric, t[0]), _score(other, t[0]), t[0].run_id))
        common = Counter(_sets(r) for r, _ in items).most_common(1)[0][0]
        out[bench] = [Row(r, n, i + 1, _sets(r) == common) for i, (r, n) in enumerate(items)]
    return out


def _time(run: StoredRun) -> float:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(run.record.time).timestamp()
    except ValueError:
        return 0.0


def _sets(run: StoredRun) -> tuple[str, ...]:
    return tuple(sorted(k for k in run.record.metrics if k != "average"))


def _fmt(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{100 * v:.{digits}f}"


def _rule(metric: str, pick: str) -> str:
    which = ("the latest run (by stored time)" if pick == "latest"
             else f"the best run by average {metric} ({RANK_METRICS[metric]} is better)")
    return (f"One row per backbone (and weights) x method (and plan) x postprocessor x hyperparameters, showing "
            f"{which} of each; ranked by average {metric.upper() if metric == 'fpr95' else 'AUROC'} "
            f"({RANK_METRICS[metric]} is better).")


def _conventions() -> list[str]:
    return [f"{k}: {v}" for k, v in CONVENTIONS.items() if k in ("orientation", "fpr95", "auroc", "aupr_in", "average")]


# ------------------------------------------------------------------------------------------------ files
def write(board: dict[str, list[Row]], out_dir: str | Path, metric: str = "fpr95", pick: str = "latest") -> list[Path]:
    """Write ``leaderboard.md``, ``.csv`` and ``.html`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    texts = {
        "leaderboard.md": render_markdown(board, out, metric, pick),
        "leaderboard.csv": render_csv(board, out),
        "leaderboard.html": render_html(board, out, metric, pick),
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        write_text(out / name, text)
        paths.append(out / name)
    return paths


def _links(row: Row, out: Path) -> dict[str, str]:
    return {k: Path(os.path.relpath(p, out)).as_posix() for k, p in figure_paths(row.run.path).items()}


def render_markdown(board: dict[str, list[Row]], out: Path, metric: str, pick: str) -> str:
    lines = ["# Leaderboard", "", _rule(metric, pick), "Values x100, 2 decimals; ↓ lower is better, ↑ higher is better.",
             "", "Metric conventions:", ""]
    lines += [f"- {c}" for c in _conventions()]
    for bench, rows in board.items():
        sets = ood_set_names([r.record for r in rows])
        lines += ["", f"## {bench}", ""]
        head = ["#", "backbone", "method", "postprocessor", "hyperparameters"]
        head += [f"avg {h}" for _, h in AVG_COLUMNS]
        head += [f"{s} {h}" for s in sets for _, h in SET_METRICS]
        head += ["runs", "run", "figures"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---:" if i == 0 or 5 <= i < len(head) - 3 else "---" for i in range(len(head))) + "|")
        flagged = False
        for row in rows:
            rec = row.record
            mark = "" if row.same_sets else "*"
            flagged |= not row.same_sets
            cells = [str(row.rank), rec.backbone.get("name", ""), method_title(rec), post_title(rec),
                     row.hyper() or "defaults"]
            cells += [_fmt(row.value(m)) + mark for m, _ in AVG_COLUMNS]
            cells += [_fmt(row.value(m, s)) for s in sets for m, _ in SET_METRICS]
            links = _links(row, out)
            cells += [str(row.n_runs), f"`{row.run.run_id}`", " ".join(f"[{k}]({v})" for k, v in links.items())]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if flagged:
            lines += ["", "\\* averaged over a different list of OOD sets than most rows of this benchmark."]
    return "\n".join(lines) + "\n"


def render_csv(board: dict[str, list[Row]], out: Path) -> str:
    sets = ood_set_names([r.record for rows in board.values() for r in rows])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["benchmark", "rank", "backbone", "pretrained", "method", "plan_hash", "postprocessor", "params",
                *[f"avg_{m}" for m, _ in AVG_COLUMNS], *[f"{s}:{m}" for s in sets for m, _ in SET_METRICS],
                "same_ood_sets", "runs", "run_id", "run_time", "roc_figure", "hist_figure"])
    for bench, rows in board.items():
        for row in rows:
            rec = row.record
            links = _links(row, out)
            w.writerow([bench, row.rank, rec.backbone.get("name", ""), rec.backbone.get("pretrained") or "",
                        rec.method, rec.plan.get("hash") or "", rec.postprocessor.get("name", ""),
                        json.dumps(rec.postprocessor.get("params") or {}, sort_keys=True),
                        *[_fmt(row.value(m), 4) for m, _ in AVG_COLUMNS],
                        *[_fmt(row.value(m, s), 4) for s in sets for m, _ in SET_METRICS],
                        int(row.same_sets), row.n_runs, row.run.run_id, rec.time,
                        links.get("roc", ""), links.get("hist", "")])
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
code{font-size:12px}
.note{color:#555;font-size:13px}
"""

_JS = """
(function () {
  function cellValue(td) {
    var v = td.getAttribute("data-v");
    if (v === null || v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortTable(table, key, dir) {
    var ths = table.tHead.rows[0].cells, idx = -1, i;
    for (i = 0; i < ths.length; i++) if (ths[i].getAttribute("data-key") === key) idx = i;
    if (idx < 0) return false;
    if (dir !== "asc" && dir !== "desc") dir = ths[idx].getAttribute("data-best") || "asc";
    var sign = dir === "asc" ? 1 : -1, body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[idx]), y = cellValue(b.cells[idx]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return x < y ? -sign : x > y ? sign : 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (i = 0; i < ths.length; i++) ths[i].removeAttribute("aria-sort");
    ths[idx].setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    table.setAttribute("data-sorted", key + ":" + dir);
    return true;
  }
  function fromHash() {
    var m = /(?:^#|&)sort=([^&]+)/.exec(window.location.hash);
    if (!m) return;
    var spec = decodeURIComponent(m[1]), dir = null, cut = spec.lastIndexOf(":");
    if (cut > 0 && (spec.slice(cut + 1) === "asc" || spec.slice(cut + 1) === "desc")) {
      dir = spec.slice(cut + 1); spec = spec.slice(0, cut);
    }
    document.querySelectorAll("table.board").forEach(function (t) { sortTable(t, spec, dir); });
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key"), now = table.getAttribute("data-sorted") || "", dir = null;
        if (now === key + ":asc") dir = "desc"; else if (now === key + ":desc") dir = "asc";
        sortTable(table, key, dir);
        var applied = table.getAttribute("data-sorted");
        if (window.history && history.replaceState) history.replaceState(null, "", "#sort=" + applied);
      });
    });
  });
  fromHash();
  window.addEventListener("hashchange", fromHash);
})();
"""


def render_html(board: dict[str, list[Row]], out: Path, metric: str, pick: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>oodbench leaderboard</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>oodbench leaderboard</h1>", f'<p class="note">{e(_rule(metric, pick))} Values x100, 2 decimals; '
             "↓ lower is better, ↑ higher is better. Click a column header to sort (again to reverse).</p>",
             '<details open><summary>Metric conventions</summary><ul class="note">']
    parts += [f"<li>{e(c)}</li>" for c in _conventions()]
    parts.append("</ul></details>")
    for bench, rows in board.items():
        sets = ood_set_names([r.record for r in rows])
        parts.append(f"<h2>{e(bench)}</h2>")
        parts.append(f'<table class="board" data-benchmark="{e(bench)}"><thead><tr>')
        heads = [("rank", "#", "asc"), ("backbone", "backbone", "asc"), ("method", "method", "asc"),
                 ("post", "postprocessor", "asc"), ("hyper", "hyperparameters", "asc")]
        heads += [(m, f"avg {h}", "asc" if RANK_METRICS.get(m, "higher") == "lower" else "desc") for m, h in AVG_COLUMNS]
        heads += [(f"{m}@{s}", f"{s} {h}", "asc" if m == "fpr95" else "desc") for s in sets for m, h in SET_METRICS]
        heads += [("runs", "runs", "desc"), ("run", "run", "asc"), ("figures", "figures", "asc")]
        parts += [f'<th data-key="{e(k)}" data-best="{b}" title="sort by {e(label)}">{e(label)}</th>'
                  for k, label, b in heads]
        parts.append("</tr></thead><tbody>")
        flagged = False
        for row in rows:
            rec = row.record
            flagged |= not row.same_sets
            mark = "" if row.same_sets else "*"
            cells = [_td(row.rank, str(row.rank), True), _td(rec.backbone.get("name", "")), _td(method_title(rec)),
                     _td(post_title(rec)), _td(row.hyper() or "defaults")]
            cells += [_td(_fmt(row.value(m), 6), _fmt(row.value(m)) + mark, True) for m, _ in AVG_COLUMNS]
            cells += [_td(_fmt(row.value(m, s), 6), _fmt(row.value(m, s)), True) for s in sets for m, _ in SET_METRICS]
            links = _links(row, out)
            figs = " ".join(f'<a href="{e(v)}">{e(k)}</a>' for k, v in links.items())
            cells += [_td(row.n_runs, str(row.n_runs), True),
                      f'<td data-v="{e(row.run.run_id)}"><code>{e(row.run.run_id)}</code></td>',
                      f'<td data-v="{len(links)}">{figs}</td>']
            parts.append(f'<tr data-run="{e(row.run.run_id)}">' + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
        if flagged:
            parts.append('<p class="note">* averaged over a different list of OOD sets than most rows of this '
                         "benchmark.</p>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _td(value: Any, text: str | None = None, numeric: bool = False) -> str:
    e = html.escape
    shown = str(value) if text is None else text
    cls = ' class="num"' if numeric else ""
    return f'<td data-v="{e(str(value))}"{cls}>{e(shown)}</td>'


def method_title(rec) -> str:
    """The method's display name as recorded (``SeTAR+FT``), else its registry name."""
    return rec.plan.get("display_name") or rec.method


def post_title(rec) -> str:
    """The score's display name as recorded (``GL-MCM``), else its registry name."""
    return rec.postprocessor.get("display_name") or rec.postprocessor.get("name", "")
