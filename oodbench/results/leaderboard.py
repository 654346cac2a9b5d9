"""The leaderboard: one row per backbone x method x postprocessor x hyperparameters, built from stored runs.

Rows are grouped by (benchmark, backbone name, backbone weights, method, plan hash, postprocessor, postprocessor
hyperparameters). Each row shows one run of its group: by default the **latest** (by stored time), with
``pick="best"`` the best by the ranking metric (lowest FPR95 / highest AUROC). Rows are ranked by the average
of the ranking metric over the run's OOD sets. Values are x100 with 2 decimals (CSV: 4 decimals).

Test-time scores (AdaNeg: the run records ``extra["stream"]``) are evaluated under a declared stream protocol; their
row shows the mean over the stream orders ``±`` the population std over them (from the run's per-order metrics),
and its ``protocol`` column names the order seeds and batch size — compare such rows only with rows of the same
protocol. Static rows say ``static``. Ranking uses the mean.

When some run of a benchmark carries a full-spectrum evaluation (``extra["fsood"]``: OOD vs ID test and every
covariate-shifted ID set, as OpenOOD's ``eval_ood(fsood=True)``), the benchmark's table gains the columns ``FS avg
FPR95``, ``FS avg AUROC`` and the accuracy on each covariate-shifted ID set (csID); rows without one leave them
blank. They are shown, never ranked on.

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
from oodbench.results.runs import (StoredRun, fsood_of, list_runs, ood_set_names, order_std, params_text,
                                   protocol_text)
from oodbench.results.store import ResultsStore

RANK_METRICS = {"fpr95": "lower", "auroc": "higher"}
PICKS = ("latest", "best")
AVG_COLUMNS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"), ("aupr_in", "AUPR-In↑"))
SET_METRICS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"))
FS_COLUMNS = (("fpr95", "FS avg FPR95↓"), ("auroc", "FS avg AUROC↑"))
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

    def std(self, metric: str, ood_set: str = "average") -> float | None:
        """Population std over the stream orders of a test-time run (a fraction); None for a static run."""
        return order_std(self.record, ood_set, metric)

    @property
    def test_time(self) -> bool:
        return bool(protocol_text(self.record))

    def protocol(self) -> str:
        """``static`` or ``test-time: stream orders 0, 1, 2, batch 256``."""
        return protocol_text(self.record) or "static"

    def text(self, metric: str, ood_set: str = "average") -> str:
        """x100 with 2 decimals, ``± std`` over the stream orders for a test-time run."""
        std = self.std(metric, ood_set)
        return _fmt(self.value(metric, ood_set)) + ("" if std is None else f" ± {100 * std:.2f}")

    def fs_text(self, metric: str) -> str:
        """Full-spectrum average x100, ``± std`` over the stream orders for a test-time run."""
        std = order_std(self.record, "fsood:average", metric)
        return _fmt(self.fs_value(metric)) + ("" if std is None else f" ± {100 * std:.2f}")

    def fs_value(self, metric: str) -> float | None:
        """Full-spectrum average of ``metric`` (a fraction), None without a full-spectrum evaluation."""
        fs = fsood_of(self.record)
        return None if fs is None else (fs["metrics"].get("average") or {}).get(metric)

    def csid_accuracy(self, name: str) -> float | None:
        fs = fsood_of(self.record)
        return None if fs is None else ((fs.get("csid") or {}).get(name) or {}).get("accuracy")


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


def csid_names(rows: list[Row]) -> list[str]:
    """Covariate-shifted ID sets over ``rows``' full-spectrum evaluations, first seen first."""
    names: list[str] = []
    for row in rows:
        for name in (fsood_of(row.record) or {}).get("csid") or {}:
            if name not in names:
                names.append(name)
    return names


def has_fsood(rows: list[Row]) -> bool:
    return any(fsood_of(r.record) is not None for r in rows)


def _notes(rows: list[Row]) -> list[str]:
    notes = []
    if any(r.test_time for r in rows):
        notes.append("Test-time scores (protocol column): mean ± population std over the declared stream orders "
                     "(one stream per OOD set: ID test + that set, shuffled by each order seed, fed in batches of the "
                     "given size, fresh state per stream); comparable with each other only under the same orders and "
                     "batch size. Ranked by the mean.")
    if has_fsood(rows):
        notes.append("FS columns: full-spectrum evaluation, OOD vs ID test ∪ every covariate-shifted ID set (csID, "
                     "scored as ID); csID columns: top-1 accuracy on each csID set. Blank: the run has no "
                     "full-spectrum evaluation. Not used for ranking.")
    return notes


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
        fs, csid = has_fsood(rows), csid_names(rows)
        head = ["#", "backbone", "method", "postprocessor", "hyperparameters", "protocol"]
        head += [f"avg {h}" for _, h in AVG_COLUMNS]
        if fs:
            head += [h for _, h in FS_COLUMNS] + [f"csID {c} acc↑" for c in csid]
        head += [f"{s} {h}" for s in sets for _, h in SET_METRICS]
        head += ["runs", "run", "figures"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---:" if i == 0 or 6 <= i < len(head) - 3 else "---" for i in range(len(head))) + "|")
        flagged = False
        for row in rows:
            rec = row.record
            mark = "" if row.same_sets else "*"
            flagged |= not row.same_sets
            cells = [str(row.rank), rec.backbone.get("name", ""), method_title(rec), post_title(rec),
                     row.hyper() or "defaults", row.protocol()]
            cells += [row.text(m) + mark for m, _ in AVG_COLUMNS]
            if fs:
                cells += [row.fs_text(m) for m, _ in FS_COLUMNS] + [_fmt(row.csid_accuracy(c)) for c in csid]
            cells += [row.text(m, s) for s in sets for m, _ in SET_METRICS]
            links = _links(row, out)
            cells += [str(row.n_runs), f"`{row.run.run_id}`", " ".join(f"[{k}]({v})" for k, v in links.items())]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if flagged:
            lines += ["", "\\* averaged over a different list of OOD sets than most rows of this benchmark."]
        notes = _notes(rows)
        if notes:
            lines += [""] + [n + "  " for n in notes]
    return "\n".join(lines) + "\n"


def render_csv(board: dict[str, list[Row]], out: Path) -> str:
    """One line per row of every benchmark. Values x100 with 4 decimals (a test-time row: the mean over its stream
    orders). ``test_time``, ``stream_seeds``, ``stream_batch`` and ``avg_<metric>_std`` (population std over the
    orders) say how a test-time row was measured (empty for static rows); the full-spectrum columns ``fs_avg_*`` and
    ``csid:<set>:accuracy`` appear only when some run has a full-spectrum evaluation."""
    all_rows = [r for rows in board.values() for r in rows]
    sets = ood_set_names([r.record for r in all_rows])
    fs, csid = has_fsood(all_rows), csid_names(all_rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["benchmark", "rank", "backbone", "pretrained", "method", "plan_hash", "postprocessor", "params",
                *[f"avg_{m}" for m, _ in AVG_COLUMNS], *[f"{s}:{m}" for s in sets for m, _ in SET_METRICS],
                "same_ood_sets", "runs", "run_id", "run_time", "roc_figure", "hist_figure",
                "test_time", "stream_seeds", "stream_batch", *[f"avg_{m}_std" for m, _ in AVG_COLUMNS],
                *([f"fs_avg_{m}" for m, _ in FS_COLUMNS] + [f"csid:{c}:accuracy" for c in csid] if fs else [])])
    for bench, rows in board.items():
        for row in rows:
            rec = row.record
            links = _links(row, out)
            stream = (rec.extra or {}).get("stream") if row.test_time else None
            w.writerow([bench, row.rank, rec.backbone.get("name", ""), rec.backbone.get("pretrained") or "",
                        rec.method, rec.plan.get("hash") or "", rec.postprocessor.get("name", ""),
                        json.dumps(rec.postprocessor.get("params") or {}, sort_keys=True),
                        *[_fmt(row.value(m), 4) for m, _ in AVG_COLUMNS],
                        *[_fmt(row.value(m, s), 4) for s in sets for m, _ in SET_METRICS],
                        int(row.same_sets), row.n_runs, row.run.run_id, rec.time,
                        links.get("roc", ""), links.get("hist", ""),
                        int(row.test_time),
                        " ".join(str(x) for x in (stream.get("seeds") or [])) if stream else "",
                        stream.get("batch_size", "") if stream else "",
                        *[_fmt(row.std(m), 4) for m, _ in AVG_COLUMNS],
                        *([_fmt(row.fs_value(m), 4) for m, _ in FS_COLUMNS]
                          + [_fmt(row.csid_accuracy(c), 4) for c in csid] if fs else [])])
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
        fs, csid = has_fsood(rows), csid_names(rows)
        heads = [("rank", "#", "asc"), ("backbone", "backbone", "asc"), ("method", "method", "asc"),
                 ("post", "postprocessor", "asc"), ("hyper", "hyperparameters", "asc"), ("protocol", "protocol", "asc")]
        heads += [(m, f"avg {h}", "asc" if RANK_METRICS.get(m, "higher") == "lower" else "desc") for m, h in AVG_COLUMNS]
        if fs:
            heads += [(f"fs_{m}", h, "asc" if m == "fpr95" else "desc") for m, h in FS_COLUMNS]
            heads += [(f"csid@{c}", f"csID {c} acc↑", "desc") for c in csid]
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
                     _td(post_title(rec)), _td(row.hyper() or "defaults"), _td(row.protocol())]
            cells += [_td(_fmt(row.value(m), 6), row.text(m) + mark, True) for m, _ in AVG_COLUMNS]
            if fs:
                cells += [_td(_fmt(row.fs_value(m), 6), row.fs_text(m), True) for m, _ in FS_COLUMNS]
                cells += [_td(_fmt(row.csid_accuracy(c), 6), _fmt(row.csid_accuracy(c)), True) for c in csid]
            cells += [_td(_fmt(row.value(m, s), 6), row.text(m, s), True) for s in sets for m, _ in SET_METRICS]
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
        parts += [f'<p class="note">{e(n)}</p>' for n in _notes(rows)]
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
