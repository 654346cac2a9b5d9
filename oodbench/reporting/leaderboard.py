"""The leaderboard: one row per backbone x method x postprocessor x hyperparameters, built from stored runs.

Rows are grouped by (benchmark and its ID data, backbone name, backbone weights, method, plan hash, postprocessor,
postprocessor hyperparameters). A registered benchmark is its name; runs on an **ad-hoc** benchmark (``oodbench run
--id-test DIR ...``, which records its folders and data digests under ``extra["data"]``) are told apart by the
fingerprint of their ID test split (file list and file contents), so runs on different ID folders never merge: each
gets its own table, titled with the folder's name and the digest. Each row shows one run of its group: by default the **latest** (by stored time), with
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

Each row shows, besides the averages over all OOD sets (FPR95, AUROC, AUPR-In, AUPR-Out), the near-OOD and
far-OOD averages (when the benchmark has both groups; plain means over the run's sets of that group), the ID
accuracy, the method's settings in words (from the method's :meth:`~oodbench.method.Method.settings_text`: SeTAR's
λ, top-K, searcher, weight type and seed; a fine-tuning method's rank / α / epochs ...), the score's
hyperparameters, and the per-set values. The best value of each column is marked (bold; ties at the shown precision
all marked). An imported run (``oodbench runs import``) is marked :data:`IMPORT_MARK`, with a legend.

Three files are written: ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.html``. Markdown cells are
escaped (no HTML from run fields passes through) and CSV cells that would start a spreadsheet formula are
prefixed with ``'`` (:mod:`oodbench.reporting.escape`). The HTML page is one self-contained static file (inline CSS
and JavaScript, nothing loaded from elsewhere, no server) that fits a 1400-px window with every ranking metric
visible: the per-OOD-set and full-spectrum columns form a group that a button expands; the header row and the
first columns (rank, method) stay in view while the table scrolls. Clicking a column header sorts by it (again to
reverse) and the ``#`` column then numbers the rows in that order (equal values share a rank); a URL hash
``#sort=KEY`` (best first), ``#sort=KEY:asc`` or ``#sort=KEY:desc`` sorts on load, e.g.
``leaderboard.html#sort=auroc``, ``#sort=near_fpr95`` or ``#sort=fpr95@iNaturalist``.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from oodbench.atomic import write_text
from oodbench.errors import UserError
from oodbench.hashing import canonical_json
from oodbench.metrics import CONVENTIONS
from oodbench.reporting.escape import csv_writer, md_cell, md_text
from oodbench.reporting.plots import figure_paths
from oodbench.results.importer import MARK, is_imported
from oodbench.results.runs import (StoredRun, fsood_of, list_runs, method_title, ood_set_names, order_std,
                                   params_text, post_title, protocol_text)
from oodbench.results.store import ResultsStore

RANK_METRICS = {"fpr95": "lower", "auroc": "higher"}
PICKS = ("latest", "best")
AVG_COLUMNS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"), ("aupr_in", "AUPR-In↑"), ("aupr_out", "AUPR-Out↑"))
GROUP_METRICS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"))  # near-OOD and far-OOD averages
OOD_GROUPS = ("near", "far")
SET_METRICS = (("fpr95", "FPR95↓"), ("auroc", "AUROC↑"))
FS_COLUMNS = (("fpr95", "FS avg FPR95↓"), ("auroc", "FS avg AUROC↑"))
FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.html")
#: Marks an imported run's row (its legend: :data:`IMPORT_LEGEND`): the mark every table format uses.
IMPORT_MARK = MARK
IMPORT_LEGEND = (f"{IMPORT_MARK} imported run: per-image scores written by other code, stored with `oodbench runs "
                 "import` and scored by oodbench's metric code; its settings are what the import recorded "
                 "(`oodbench runs show RUN` names the files and their SHA-256).")


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
        """The score's hyperparameters, the plan hash and the weights (``tau=1.0; plan 3f9a1c2b; weights openai``)."""
        rec = self.record
        parts = [params_text(rec.postprocessor.get("params"))]
        if rec.plan.get("hash") and rec.plan.get("hash") != "none":
            parts.append(f"plan {str(rec.plan['hash'])[:8]}")
        if rec.backbone.get("pretrained"):
            parts.append(f"weights {rec.backbone['pretrained']}")
        return "; ".join(p for p in parts if p)

    def settings(self) -> str:
        """The method's settings in words (:func:`method_settings`), ``""`` for the vanilla model."""
        return method_settings(self.record)

    def params(self) -> str:
        """The score's hyperparameters, ``tau=1.0``."""
        return params_text(self.record.postprocessor.get("params"))

    def params_changed(self) -> str:
        """The score's hyperparameters that differ from the registered score's defaults (``temperature=0.1``),
        ``defaults`` when none does; every one when the score is not registered here."""
        params = self.record.postprocessor.get("params") or {}
        defaults = _default_params(self.record.postprocessor.get("name", ""))
        if defaults is None:
            return params_text(params)
        changed = {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}
        return params_text(changed) if changed else ("defaults" if params else "")

    @property
    def imported(self) -> bool:
        return is_imported(self.record)

    @property
    def id_accuracy(self) -> float | None:
        return self.record.id_accuracy

    def group_value(self, metric: str, group: str) -> float | None:
        """Plain mean of ``metric`` over the run's OOD sets of ``group`` (``near`` / ``far``), None without any."""
        return group_mean(self.record, metric, group)

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


def _default_params(name: str) -> dict[str, Any] | None:
    """The registered score ``name``'s default hyperparameters, None when it is not registered (or needs arguments)."""
    from oodbench.registry import get

    try:
        return dict(get("postprocessors", name)().get_params())
    except Exception:  # not registered here, or not constructible without arguments
        return None


def group_mean(record, metric: str, group: str) -> float | None:
    """Plain mean of ``metric`` over ``record``'s OOD sets of ``group`` (None when it has none, or one lacks it)."""
    vals = [record.metrics.get(name, {}).get(metric) for name, g in record.ood_sets.items() if g == group]
    if not vals or any(v is None for v in vals):
        return None
    return float(sum(vals) / len(vals))


def method_settings(record) -> str:
    """The method's settings in readable words, as the registered method describes them
    (:meth:`oodbench.method.Method.settings_text` over the record's ``plan``); an unregistered method: its recorded
    options."""
    from oodbench.method import Method, method_class

    try:
        cls = method_class(record.method)
    except Exception:  # a method of a plugin not loaded now, or an imported name: the generic words
        cls = Method
    try:
        return cls.settings_text(record.plan or {})
    except (KeyError, TypeError, ValueError, AttributeError):  # an older or hand-made record
        return Method.settings_text(record.plan or {})


def data_identity(record) -> tuple[str, str]:
    """What tells apart the ID data of an ad-hoc benchmark's runs: ``(fingerprint, words)`` from the data digests
    the run recorded (``extra["data"]``: the ID test split's fingerprint, of its file list and file contents; else
    the file list's digest), ``("", "")`` for a registered benchmark (its name is its identity)."""
    data = (record.extra or {}).get("data")
    if not isinstance(data, dict) or "folders" not in data:
        return "", ""
    split = (data.get("splits") or {}).get(record.id_set) or {}
    listed = (data.get("file_lists") or {}).get(record.id_set) or {}
    digest = str(split.get("fingerprint") or listed.get("list_digest") or "")
    folder = str((data.get("folders") or {}).get(record.id_set) or "")
    name = Path(folder).name or folder or record.id_set
    n = split.get("n", listed.get("n"))
    return digest, f"ID {name}" + (f" ({n} images" if n is not None else " (") + f", data {digest[:10]})"


def board_key(record) -> str:
    """The leaderboard table a run belongs to: the benchmark name, plus its ID data for an ad-hoc benchmark."""
    digest, words = data_identity(record)
    return f"{record.benchmark} · {words}" if digest else record.benchmark


def group_key(run: StoredRun) -> tuple:
    rec = run.record
    return (board_key(rec), rec.backbone.get("name"), str(rec.backbone.get("pretrained")), rec.method,
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
    if any(r.imported for r in rows):
        notes.append(IMPORT_LEGEND)
    if _has_groups(rows):
        notes.append("near / far: plain mean over the run's near-OOD / far-OOD sets (a test-time row: of the mean over "
                     "its stream orders).")
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


# ---------------------------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class Column:
    """One metric column of a benchmark's table.

    Attributes:
        key: sort key (``fpr95``, ``near_auroc``, ``id_acc``, ``auroc@SUN`` ...; the HTML page's ``#sort=KEY``).
        label: the metric (``FPR95↓``); ``group``: what it is of (``all OOD sets``, ``near-OOD``, a set name).
        md: the flat header of the Markdown and of the terminal (``near avg FPR95↓``).
        best: ``lower`` / ``higher`` (the best value is marked), None for none.
        detail: in the per-set group the HTML page folds away.
    """

    key: str
    label: str
    group: str
    md: str
    best: str | None
    value: Callable[[Row], float | None]
    text: Callable[[Row], str]
    detail: bool = False


def _has_groups(rows: list[Row]) -> bool:
    """Both near-OOD and far-OOD sets among the rows' runs: the near / far averages are worth columns."""
    groups = {g for r in rows for g in r.record.ood_sets.values()}
    return all(g in groups for g in OOD_GROUPS)


def _direction(metric: str) -> str:
    return "lower" if metric == "fpr95" else "higher"


def columns(rows: list[Row]) -> list[Column]:
    """The metric columns of one benchmark's table, in order: averages over all OOD sets (FPR95, AUROC, AUPR-In,
    AUPR-Out), near-OOD and far-OOD averages (when both groups occur), ID accuracy; then the detail group:
    full-spectrum averages and csID accuracies (when some run has them) and each OOD set's FPR95 and AUROC."""
    cols = []
    for m, h in AVG_COLUMNS:
        cols.append(Column(m, h, "all OOD sets (avg)", f"avg {h}", _direction(m),
                           lambda r, m=m: r.value(m), lambda r, m=m: r.text(m) + ("" if r.same_sets else "*")))
    if _has_groups(rows):
        for g in OOD_GROUPS:
            for m, h in GROUP_METRICS:
                cols.append(Column(f"{g}_{m}", h, f"{g}-OOD (avg)", f"{g} avg {h}", _direction(m),
                                   lambda r, m=m, g=g: r.group_value(m, g),
                                   lambda r, m=m, g=g: _fmt(r.group_value(m, g))))
    cols.append(Column("id_acc", "acc↑", "ID", "ID acc↑", "higher", lambda r: r.id_accuracy,
                       lambda r: _fmt(r.id_accuracy)))
    if has_fsood(rows):
        for m, h in FS_COLUMNS:
            cols.append(Column(f"fs_{m}", h.removeprefix("FS avg "), "full-spectrum (avg)", h, _direction(m),
                               lambda r, m=m: r.fs_value(m), lambda r, m=m: r.fs_text(m), detail=True))
        for c in csid_names(rows):
            cols.append(Column(f"csid@{c}", "acc↑", f"csID {c}", f"csID {c} acc↑", "higher",
                               lambda r, c=c: r.csid_accuracy(c), lambda r, c=c: _fmt(r.csid_accuracy(c)),
                               detail=True))
    for s in ood_set_names([r.record for r in rows]):
        for m, h in SET_METRICS:
            cols.append(Column(f"{m}@{s}", h, s, f"{s} {h}", _direction(m), lambda r, m=m, s=s: r.value(m, s),
                               lambda r, m=m, s=s: r.text(m, s), detail=True))
    return cols


def best_values(rows: list[Row], cols: list[Column]) -> dict[str, float]:
    """The best value (x100, at the shown 2 decimals) of each column that at least two rows fill."""
    out = {}
    for col in cols:
        vals = [round(100 * v, 2) for r in rows if (v := col.value(r)) is not None]
        if col.best and len(vals) >= 2:
            out[col.key] = min(vals) if col.best == "lower" else max(vals)
    return out


def _is_best(col: Column, row: Row, best: dict[str, float]) -> bool:
    v = col.value(row)
    return col.key in best and v is not None and round(100 * v, 2) == best[col.key]


def table_subtitle(rows: list[Row]) -> str:
    """What a benchmark's rows share: the ID data of an ad-hoc benchmark, and the backbone when there is one."""
    parts = []
    digest, words = data_identity(rows[0].record)
    if digest:
        folder = ((rows[0].record.extra or {}).get("data") or {}).get("folders", {}).get(rows[0].record.id_set, "")
        parts.append(f"ad-hoc benchmark: ID test folder {folder}, data fingerprint {digest} (of the file list and "
                     "the files' contents); runs on other ID data get another table")
    backbones = sorted({_backbone_text(r) for r in rows})
    if len(backbones) == 1:
        parts.append(f"backbone {backbones[0]}")
    return "; ".join(parts)


def _backbone_text(row: Row) -> str:
    bb = row.record.backbone
    return str(bb.get("name", "")) + (f" ({bb['pretrained']})" if bb.get("pretrained") else "")


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


def _md_settings(row: Row) -> str:
    return "; ".join(p for p in (row.settings(), row.hyper()) if p) or "defaults"


def render_markdown(board: dict[str, list[Row]], out: Path, metric: str, pick: str) -> str:
    lines = ["# Leaderboard", "", md_text(_rule(metric, pick)),
             "Values x100, 2 decimals; ↓ lower is better, ↑ higher is better; **bold**: the best value of the column.",
             "", "Metric conventions:", ""]
    lines += [f"- {md_text(c)}" for c in _conventions()]
    for bench, rows in board.items():
        cols = columns(rows)
        best = best_values(rows, cols)
        lines += ["", f"## {md_text(bench)}", ""]
        subtitle = table_subtitle(rows)
        if subtitle:
            lines += [md_text(subtitle[0].upper() + subtitle[1:]) + ".", ""]
        head = ["#", "backbone", "method", "score", "settings", "protocol"] + [c.md for c in cols]
        head += ["runs", "run", "figures"]
        lines.append("| " + " | ".join(md_cell(h) for h in head) + " |")
        lines.append("|" + "|".join("---:" if i == 0 or 6 <= i < len(head) - 3 else "---" for i in range(len(head))) + "|")
        flagged = False
        for row in rows:
            rec = row.record
            flagged |= not row.same_sets
            cells = [str(row.rank), _backbone_text(row), method_title(rec) + (f" {IMPORT_MARK}" if row.imported else ""),
                     post_title(rec), _md_settings(row), row.protocol()]
            cells = [md_cell(c) for c in cells]
            for col in cols:
                text = md_cell(col.text(row))
                cells.append(f"**{text}**" if text and _is_best(col, row, best) else text)
            links = _links(row, out)
            cells += [str(row.n_runs), f"`{row.run.run_id}`",
                      " ".join(f"[{k}]({v})" for k, v in links.items())]
            lines.append("| " + " | ".join(cells) + " |")
        if flagged:
            lines += ["", "\\* averaged over a different list of OOD sets than most rows of this benchmark."]
        notes = _notes(rows)
        if notes:
            lines += [""] + [md_text(n) + "  " for n in notes]
    return "\n".join(lines) + "\n"


def render_csv(board: dict[str, list[Row]], out: Path) -> str:
    """One line per row of every benchmark. Values x100 with 4 decimals (a test-time row: the mean over its stream
    orders). ``test_time``, ``stream_seeds``, ``stream_batch`` and ``avg_<metric>_std`` (population std over the
    orders) say how a test-time row was measured (empty for static rows); the full-spectrum columns ``fs_avg_*`` and
    ``csid:<set>:accuracy`` appear only when some run has a full-spectrum evaluation. ``settings``: the method's
    settings in words; ``imported``: 1 for an imported run; ``id_data``: the ID data fingerprint of an ad-hoc
    benchmark's run (empty for a registered benchmark). Text cells are escaped against spreadsheet formulas."""
    all_rows = [r for rows in board.values() for r in rows]
    sets = ood_set_names([r.record for r in all_rows])
    fs, csid = has_fsood(all_rows), csid_names(all_rows)
    buf = io.StringIO()
    w = csv_writer(buf)  # every text cell comes from run fields: formula-like text escaped
    w.writerow(["benchmark", "rank", "backbone", "pretrained", "method", "plan_hash", "postprocessor", "params",
                *[f"avg_{m}" for m, _ in AVG_COLUMNS], *[f"{s}:{m}" for s in sets for m, _ in SET_METRICS],
                "same_ood_sets", "runs", "run_id", "run_time", "roc_figure", "hist_figure",
                "test_time", "stream_seeds", "stream_batch", *[f"avg_{m}_std" for m, _ in AVG_COLUMNS],
                *[f"{g}_avg_{m}" for g in OOD_GROUPS for m, _ in GROUP_METRICS], "id_accuracy", "settings",
                "imported", "id_data",
                *([f"fs_avg_{m}" for m, _ in FS_COLUMNS] + [f"csid:{c}:accuracy" for c in csid] if fs else [])])
    for bench, rows in board.items():
        for row in rows:
            rec = row.record
            links = _links(row, out)
            stream = (rec.extra or {}).get("stream") if row.test_time else None
            w.writerow([rec.benchmark, row.rank, rec.backbone.get("name", ""), rec.backbone.get("pretrained") or "",
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
                        *[_fmt(row.group_value(m, g), 4) for g in OOD_GROUPS for m, _ in GROUP_METRICS],
                        _fmt(row.id_accuracy, 4), row.settings(), int(row.imported), data_identity(rec)[0],
                        *([_fmt(row.fs_value(m), 4) for m, _ in FS_COLUMNS]
                          + [_fmt(row.csid_accuracy(c), 4) for c in csid] if fs else [])])
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em 1.5em;color:#222}
h1{font-size:22px;margin:.2em 0 .4em}
h2{font-size:17px;margin:1.4em 0 .2em}
.note{color:#555;font-size:13px;margin:.3em 0}
.sub{color:#666;font-size:11px;white-space:normal}
.controls{margin:.4em 0}
.controls button{font-size:12px;padding:2px 8px;cursor:pointer}
.wrap{overflow:auto;width:fit-content;max-height:calc(100vh - 2em);max-width:100%;border:1px solid #ccc;margin-bottom:.6em}
table.board{border-collapse:separate;border-spacing:0;font-size:13px}
.board th,.board td{border-right:1px solid #ddd;border-bottom:1px solid #ddd;padding:3px 6px;white-space:nowrap;
  background:#fff}
.board tbody tr:nth-child(even) td{background:#f8f8f8}
.board thead th{position:sticky;top:0;z-index:3;background:#eef0f3;font-weight:600}
.board thead tr.heads th{top:var(--head1,0px);cursor:pointer;user-select:none}
.board thead tr.groups th{font-weight:500;color:#444;font-size:12px;text-align:center}
.board .c-rank{position:sticky;left:0;z-index:2;text-align:right;min-width:1.8em}
.board .c-method{position:sticky;left:var(--rankw,2.6em);z-index:2;border-right:2px solid #bbb}
.board thead .c-rank,.board thead .c-method{z-index:4}
.board th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
.board th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
.board td.num{text-align:right;font-variant-numeric:tabular-nums}
.board td.best{font-weight:700;color:#0b5d1e}
.board td.settings{white-space:normal;min-width:13em;max-width:19em;font-size:12px}
.board td.run{white-space:normal;max-width:12em;font-size:11px}
.board td.run code{font-size:11px}
.board td.score{max-width:12em;white-space:normal}
.board td.score .nm{white-space:nowrap}
.board td.protocol{white-space:normal;max-width:11em;font-size:12px}
.board .imp{color:#a0522d;font-weight:700;cursor:help}
.board.collapsed .d{display:none}
.board .gstart{border-left:2px solid #bbb}
code{font-size:12px}
"""

_JS = """
(function () {
  function heads(table) { var r = table.tHead.rows; return r[r.length - 1].cells; }
  function cellValue(td) {
    var v = td.getAttribute("data-v");
    if (v === null || v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function renumber(table, idx, key) {
    var rows = table.tBodies[0].rows, prev, rank = 0, i;
    for (i = 0; i < rows.length; i++) {
      var cell = rows[i].cells[0], v;
      if (key === "rank") { cell.textContent = cell.getAttribute("data-v"); continue; }
      v = cellValue(rows[i].cells[idx]);
      if (v === null) { cell.textContent = "\\u2013"; continue; }
      if (i === 0 || v !== prev) rank = i + 1;
      prev = v;
      cell.textContent = String(rank);
    }
  }
  function sortTable(table, key, dir) {
    var ths = heads(table), idx = -1, i;
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
    renumber(table, idx, key);
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
  function layout() {
    document.querySelectorAll("table.board").forEach(function (table) {
      var first = table.tHead.rows[0], rank = table.querySelector("thead tr.heads th.c-rank");
      if (table.tHead.rows.length > 1) table.style.setProperty("--head1", first.getBoundingClientRect().height + "px");
      if (rank) table.style.setProperty("--rankw", rank.getBoundingClientRect().width + "px");
    });
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    Array.prototype.forEach.call(heads(table), function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key"), now = table.getAttribute("data-sorted") || "", dir = null;
        if (now === key + ":asc") dir = "desc"; else if (now === key + ":desc") dir = "asc";
        sortTable(table, key, dir);
        var applied = table.getAttribute("data-sorted");
        if (window.history && history.replaceState) history.replaceState(null, "", "#sort=" + applied);
      });
    });
  });
  document.querySelectorAll("button.toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      var table = document.getElementById(button.getAttribute("data-table"));
      var open = table.classList.toggle("collapsed") === false;
      button.textContent = open ? button.getAttribute("data-hide") : button.getAttribute("data-show");
      button.setAttribute("aria-expanded", open ? "true" : "false");
      layout();
    });
  });
  layout();
  fromHash();
  window.addEventListener("hashchange", fromHash);
  window.addEventListener("resize", layout);
})();
"""


def _wbr(text: str) -> str:
    """HTML-escaped ``text`` that may break after each ``-`` or ``_`` (a long run id wraps at its parts)."""
    e = html.escape
    return "".join(e(ch) + ("<wbr>" if ch in "-_" else "") for ch in text)


def render_html(board: dict[str, list[Row]], out: Path, metric: str, pick: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>oodbench leaderboard</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>oodbench leaderboard</h1>", f'<p class="note">{e(_rule(metric, pick))} Values x100, 2 decimals; '
             "↓ lower is better, ↑ higher is better; <b>bold</b>: the best value of the column. Click a column "
             "header to sort (again to reverse); # then numbers the rows in that order.</p>",
             '<details><summary class="note">Metric conventions</summary><ul class="note">']
    parts += [f"<li>{e(c)}</li>" for c in _conventions()]
    parts.append("</ul></details>")
    for t, (bench, rows) in enumerate(board.items()):
        parts += _html_table(f"board-{t}", bench, rows, out, pick)
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _html_table(table_id: str, bench: str, rows: list[Row], out: Path, pick: str) -> list[str]:
    e = html.escape
    cols = columns(rows)
    best = best_values(rows, cols)
    many_backbones = len({_backbone_text(r) for r in rows}) > 1
    protocol = any(r.test_time for r in rows)
    fixed = [("rank", "#", "asc", "c-rank"), ("method", "method", "asc", "c-method"), ("post", "score", "asc", "")]
    if many_backbones:
        fixed.append(("backbone", "backbone", "asc", ""))
    settings = any(r.settings() for r in rows)
    if settings:
        fixed.append(("settings", "settings", "asc", ""))
    if protocol:
        fixed.append(("protocol", "protocol", "asc", ""))
    parts = [f"<h2>{e(bench)}</h2>"]
    subtitle = table_subtitle(rows)
    if subtitle:
        parts.append(f'<p class="note">{e(subtitle[0].upper() + subtitle[1:])}.</p>')
    n_detail = sum(c.detail for c in cols)
    if n_detail:
        parts.append(f'<div class="controls"><button class="toggle" type="button" data-table="{table_id}" '
                     f'aria-expanded="false" data-show="Show per-OOD-set columns ({n_detail})" '
                     f'data-hide="Hide per-OOD-set columns">Show per-OOD-set columns ({n_detail})</button></div>')
    parts.append(f'<div class="wrap"><table class="board collapsed" id="{table_id}" data-benchmark="{e(bench)}">'
                 "<thead>")
    # the group row: what each metric column is of
    groups: list[list] = []
    for col in cols:
        if groups and groups[-1][0] == col.group and groups[-1][2] == col.detail:
            groups[-1][1] += 1
        else:
            groups.append([col.group, 1, col.detail])
    row0 = [f'<th class="c-rank"></th><th class="c-method"></th>']
    if len(fixed) > 2:
        row0.append(f'<th colspan="{len(fixed) - 2}"></th>')
    row0 += [f'<th colspan="{n}" class="gstart{" d" if d else ""}">{e(g)}</th>' for g, n, d in groups]
    row0.append("<th></th>")
    parts.append('<tr class="groups">' + "".join(row0) + "</tr>")
    heads = [f'<th data-key="{k}" data-best="{b}" class="{c}" title="sort by {e(label)}">{e(label)}</th>'
             for k, label, b, c in fixed]
    first_of_group = set()
    seen = None
    for col in cols:
        if (col.group, col.detail) != seen:
            first_of_group.add(col.key)
            seen = (col.group, col.detail)
    for col in cols:
        cls = " ".join(c for c in ("gstart" if col.key in first_of_group else "", "d" if col.detail else "") if c)
        heads.append(f'<th data-key="{e(col.key)}" data-best="{"asc" if col.best == "lower" else "desc"}" '
                     f'class="{cls}" title="sort by {e(col.md)}">{e(col.label)}</th>')
    heads.append('<th data-key="run" data-best="asc" title="sort by run id">run</th>')
    parts.append('<tr class="heads">' + "".join(heads) + "</tr></thead><tbody>")
    flagged = False
    for row in rows:
        rec = row.record
        flagged |= not row.same_sets
        mark = (f' <span class="imp" title="{e(IMPORT_LEGEND)}">{IMPORT_MARK}</span>' if row.imported else "")
        cells = [f'<td class="c-rank num" data-v="{row.rank}">{row.rank}</td>',
                 f'<td class="c-method" data-v="{e(method_title(rec))}">{e(method_title(rec))}{mark}</td>',
                 f'<td class="score" data-v="{e(post_title(rec))}" title="{e(row.params())}">'
                 f'<span class="nm">{e(post_title(rec))}</span>'
                 + (f'<div class="sub">{e(row.params_changed())}</div>' if row.params_changed() else "") + "</td>"]
        if many_backbones:
            cells.append(_td(_backbone_text(row)))
        plan_hash = rec.plan.get("hash")
        tip = f"plan {plan_hash}" if plan_hash and plan_hash != "none" else ""
        if settings:
            cells.append(f'<td class="settings" data-v="{e(row.settings())}" title="{e(tip)}">'
                         f'{e(row.settings()) or "—"}</td>')
        if protocol:
            cells.append(f'<td class="protocol" data-v="{e(row.protocol())}">{e(row.protocol())}</td>')
        for col in cols:
            v = col.value(row)
            cls = " ".join(c for c in ("num", "best" if _is_best(col, row, best) else "",
                                       "gstart" if col.key in first_of_group else "", "d" if col.detail else "") if c)
            cells.append(f'<td class="{cls}" data-v="{_fmt(v, 6)}">{e(col.text(row))}</td>')
        links = _links(row, out)
        figs = " ".join(f'<a href="{e(v)}">{e(k)}</a>' for k, v in links.items())
        info = ([f"{pick} of {row.n_runs} runs" if row.n_runs > 1 else ""] + ([figs] if figs else []))
        cells.append(f'<td class="run" data-v="{e(row.run.run_id)}"><code>{_wbr(row.run.run_id)}</code>'
                     + (f'<div class="sub">{" · ".join(i for i in info if i)}</div>' if any(info) else "")
                     + "</td>")
        parts.append(f'<tr data-run="{e(row.run.run_id)}">' + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    if flagged:
        parts.append('<p class="note">* averaged over a different list of OOD sets than most rows of this '
                     "benchmark.</p>")
    parts += [f'<p class="note">{e(n)}</p>' for n in _notes(rows)]
    return parts


def _td(value: Any, text: str | None = None, numeric: bool = False) -> str:
    e = html.escape
    shown = str(value) if text is None else text
    cls = ' class="num"' if numeric else ""
    return f'<td data-v="{e(str(value))}"{cls}>{e(shown)}</td>'
