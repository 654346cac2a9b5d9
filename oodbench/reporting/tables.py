"""Paper tables from stored runs: find the runs of every cell, and render Markdown, CSV and LaTeX in the paper's
layout, plus a "paper vs ours" view.

The cells and the runs they need come from a paper plugin, through the contract :mod:`oodbench.paper`. A cell is
filled only from runs
of the results store (:class:`RunIndex`); a cell whose runs are not all there is shown as ``missing`` — never
filled with the paper's number. Other markers: ``-`` not applicable (the OOD set shares classes with the ID set,
as the paper prints it) and ``blocked`` (oodbench cannot produce the cell; the table's notes say why).

An ``Average`` cell (source ``average`` or ``fsood:average``) is filled only from runs that cover exactly the
benchmark's OOD sets; a run of some of them (a partial import) leaves it ``missing``, and the cell's note (in the
legend and the JSON) says why. A cell whose runs are stored but lack the value it reads (an imported run without
an ID accuracy in Table 7) is ``missing`` with such a note too.

A value taken from an imported run (``oodbench runs import``; :func:`oodbench.results.importer.is_imported`) is
followed by the marker ``‡`` in every format (Markdown, CSV, LaTeX, the ours-vs-paper view) and explained in the
legend; the JSON says ``"imported": true`` for such a cell.

A seeded cell (several runs) shows ``mean ± std`` (population std, ``numpy.std``) over its seeds. A cell of one run
of a test-time score (AdaNeg: the run records ``extra["stream"]``) shows the run's value — the mean over its
declared stream orders — ``± `` the population std over those orders, computed from the per-order metrics the run
stores; the legend names the orders and batch size. (A test-time cell of several seeded runs shows the std over the
seeds of the per-run means.) Values are x100 with 2 decimals; the JSON written beside each table keeps them at full
precision with the run ids.

A cell's ``source`` reads an OOD set, ``average`` or ``id_accuracy`` from each run, or from the full-spectrum
evaluation a run may carry (``extra["fsood"]``): ``fsood:<set>`` / ``fsood:average`` (OOD vs ID test and every
covariate-shifted ID set) and ``csid:<set>`` (accuracy on a covariate-shifted ID set).

Matching a stored run to a :class:`~oodbench.paper.RunSpec` (:func:`matches`): same benchmark,
backbone (and weights: a published tag unless the spec names a file), method, method options (after
:func:`~oodbench.paper.normalize_options`; a run made with ``--plan FILE`` matches only the per-step
specs whose prefix it records), postprocessor with the same hyperparameters (defaults filled in), no APS, fp32,
and the seed when the spec has one (for SeTAR's random prune also the plan's seed). The newest match wins.
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from oodbench.atomic import write_text
from oodbench.reporting.escape import csv_writer, md_cell
from oodbench.results.importer import LEGEND as IMPORT_LEGEND
from oodbench.results.importer import MARK as IMPORT_MARK
from oodbench.results.importer import is_imported
from oodbench.paper import (LOWER_IS_BETTER, METRICS, Cell, RunSpec, TableSpec, normalize_options, ood_sets_of,
                            paper_of)
from oodbench.results.runs import fsood_of, metric_value, order_values, protocol_text
from oodbench.results.store import RunRecord

MISSING, NA, BLOCKED = "missing", "-", "blocked"
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_IGNORED_OPTIONS = ("seed", "tf32")


# --------------------------------------------------------------------------------------------------- matching
def _full_params(post: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """``params`` with the postprocessor's defaults filled in (None when the postprocessor is not registered)."""
    from oodbench.registry import RegistryError, get

    try:
        cls = get("postprocessors", post)
    except RegistryError:
        return None
    try:
        return cls().set_params(**params).get_params()
    except (ValueError, TypeError):
        return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _is_path(pretrained: Any) -> bool:
    text = str(pretrained or "")
    return "/" in text or "\\" in text or text.startswith("local-dir:") or text.lower().endswith(_CHECKPOINT_SUFFIXES)


def record_options(record: RunRecord) -> dict[str, Any]:
    """The method options a run was made with (normalised, without the seed)."""
    method = record.plan.get("method") or {}
    return _drop_ignored(normalize_options(record.method, method.get("options") or {}))


def _drop_ignored(options: dict[str, Any]) -> dict[str, Any]:
    """Without the options that do not identify a result (the seed, checked apart; tf32), nested dicts too (the
    ``setar`` options of ``setar-ft``); a nested dict left empty is dropped."""
    out = {}
    for k, v in options.items():
        if k in _IGNORED_OPTIONS:
            continue
        if isinstance(v, dict):
            v = _drop_ignored(v)
            if not v:
                continue
        out[k] = v
    return out


def matches(record: RunRecord, spec: RunSpec) -> bool:
    """Whether the stored ``record`` is a run of ``spec`` (see the module docstring)."""
    if record.benchmark != spec.benchmark or record.backbone.get("name") != spec.backbone:
        return False
    pretrained = record.backbone.get("pretrained")
    if spec.pretrained is None:
        if _is_path(pretrained):
            return False
    elif str(pretrained) != str(spec.pretrained):
        return False
    if record.method != spec.method or record.postprocessor.get("name") != spec.post:
        return False
    if record.postprocessor.get("aps") or (record.precision or "fp32") != "fp32" \
            or (record.backbone.get("preprocess") or {}).get("decode"):
        return False
    full = _full_params(spec.post, spec.params)
    if full is None or not _same(full, record.postprocessor.get("params") or {}):
        return False
    if spec.seed is not None and record.seed != spec.seed:
        return False
    options = record_options(record)
    wanted = _drop_ignored(spec.options)
    prefix = (record.plan.get("search") or {}).get("prefix")
    if spec.step is not None:
        return (isinstance(prefix, dict) and prefix.get("steps") == spec.step
                and _same(prefix.get("options") or {}, wanted))
    if prefix is not None or "plan_file" in options:
        return False
    if not _same(options, wanted):
        return False
    plan_seed = _plan_seed(spec)
    if plan_seed is not None:  # the result depends on the seed through the plan (SeTAR's random prune)
        return record.plan.get("seed") == plan_seed
    return True


def _plan_seed(spec: RunSpec) -> int | None:
    if spec.seed is None:
        return None
    from oodbench.method import method_class

    try:
        return method_class(spec.method).plan_seed(spec.options, spec.seed)
    except Exception:  # a method of a plugin not loaded now
        return None


class RunIndex:
    """Stored runs, searchable by :class:`RunSpec` (newest match first)."""

    def __init__(self, records: Iterable[RunRecord]):
        self._by_key: dict[tuple, list[RunRecord]] = {}
        self.by_id: dict[str, RunRecord] = {}
        for r in records:
            if r.run_id:
                self.by_id[r.run_id] = r
            key = (r.benchmark, r.backbone.get("name"), r.method, r.postprocessor.get("name"))
            self._by_key.setdefault(key, []).append(r)
        for runs in self._by_key.values():
            runs.sort(key=lambda r: (r.time or "", r.run_id or ""), reverse=True)

    @classmethod
    def from_store(cls, store) -> "RunIndex":
        return cls(store.runs())

    def find(self, spec: RunSpec) -> RunRecord | None:
        for r in self._by_key.get((spec.benchmark, spec.backbone, spec.method, spec.post), ()):
            if matches(r, spec):
                return r
        return None


# ------------------------------------------------------------------------------------------------ cell values
@dataclass(frozen=True)
class CellValue:
    """A computed cell.

    Attributes:
        status: ``ok``, ``missing`` (some runs not stored), ``na`` (not applicable), ``blocked`` or ``static``.
        value: the mean (x100 for metrics and accuracy), or the static value.
        std: population std over the runs when there are several, over the stream orders for one run of a
            test-time score, else None.
        found, needed: runs found / needed.
        run_ids: the runs used.
        note: why a cell is blocked.
        spread: what ``std`` is over: ``"seeds"``, ``"stream orders"`` or ``""`` (no std).
        protocol: for a test-time cell, the stream protocol of its run (``test-time: stream orders 0, 1, 2,
            batch 256``).
        imported: some of its runs were imported (``oodbench runs import``): the value is marked ``‡``.
    """

    status: str
    value: Any = None
    std: float | None = None
    found: int = 0
    needed: int = 0
    run_ids: tuple[str, ...] = ()
    note: str = ""
    spread: str = ""
    protocol: str = ""
    imported: bool = False

    def text(self, decimals: int = 2) -> str:
        """As printed: ``40.24``, ``40.24 ± 0.22``, ``40.24 ‡`` (imported), ``-``, ``missing``, ``blocked``."""
        if self.status == "na":
            return NA
        if self.status == "blocked":
            return BLOCKED
        if self.status == "missing":
            return MISSING if self.needed <= 1 else f"{MISSING} ({self.found}/{self.needed})"
        if self.status == "static":
            return f"{self.value:,}" if isinstance(self.value, int) else str(self.value)
        text = f"{self.value:.{decimals}f}"
        return (text + (f" ± {self.std:.{decimals}f}" if self.std is not None else "")
                + (f" {IMPORT_MARK}" if self.imported else ""))


def run_value(record: RunRecord, source: str, metric: str) -> float | None:
    """A fraction from ``record``: ``source`` = OOD set / ``average`` / ``id_accuracy`` / ``fsood:<set>`` /
    ``csid:<set>`` (:func:`oodbench.results.runs.metric_value`); ``metric`` a paper label."""
    return metric_value(record, source, METRICS.get(metric, metric))


def order_spread(record: RunRecord, source: str, metric: str) -> float | None:
    """x100 population std over the stream orders of a test-time run for this cell, else None."""
    if source == "id_accuracy" or source.startswith("csid:"):
        return None
    values = order_values(record, source, METRICS.get(metric, metric))
    if values is None:
        return None
    import numpy as np

    return float(np.std(100.0 * np.asarray(values, dtype=np.float64)))


def cell_value(cell: Cell, index: RunIndex) -> CellValue:
    if cell.na:
        return CellValue("na")
    if not cell.runs:
        return CellValue("static", cell.static)
    if cell.blocked:
        return CellValue("blocked", needed=len(cell.runs), note=cell.blocked)
    found = [(index.find(r)) for r in cell.runs]
    have = [r for r in found if r is not None]
    values = [run_value(r, cell.source, cell.metric) for r in have]
    lacking = [why for r, v in zip(have, values) if (why := lacks(r, cell.source, v))]
    if len(have) < len(cell.runs) or lacking:
        return CellValue("missing", found=len(have), needed=len(cell.runs), run_ids=tuple(r.run_id for r in have),
                         note="; ".join(dict.fromkeys(lacking)))
    import numpy as np

    arr = 100.0 * np.asarray(values, dtype=np.float64)
    ids = tuple(r.run_id for r in have)
    imported = any(is_imported(r) for r in have)
    if len(arr) > 1:
        return CellValue("ok", float(arr.mean()), float(arr.std()), len(have), len(cell.runs), ids, spread="seeds",
                         imported=imported)
    spread = order_spread(have[0], cell.source, cell.metric)
    if spread is not None:
        return CellValue("ok", float(arr[0]), spread, 1, len(cell.runs), ids, spread="stream orders",
                         protocol=protocol_text(have[0]), imported=imported)
    return CellValue("ok", float(arr[0]), None, 1, len(cell.runs), ids, imported=imported)


@functools.lru_cache(maxsize=None)
def benchmark_ood_sets(benchmark: str) -> tuple[str, ...] | None:
    """The OOD test set names a registered benchmark declares (None for an unregistered one, e.g. ``adhoc``)."""
    from oodbench.registry import RegistryError

    try:
        return ood_sets_of(benchmark)
    except (RegistryError, TypeError, ValueError):
        return None


def lacks(record: RunRecord, source: str, value: float | None) -> str:
    """Why ``record`` cannot give the cell's value (``""`` when it can): the value is not stored, or an Average is
    asked of a run that does not cover exactly its benchmark's OOD sets."""
    if source in ("average", "fsood:average"):
        declared = benchmark_ood_sets(record.benchmark)
        fs = fsood_of(record)
        fsood = fs["metrics"] if fs else {}
        have = [n for n in (record.ood_sets if source == "average" else fsood) if n != "average"]
        if declared is not None and set(have) != set(declared):
            not_in = [n for n in declared if n not in have]
            return (f"run {record.run_id} covers {len(have)} of the {len(declared)} OOD sets of {record.benchmark}"
                    + (f" (not {', '.join(not_in)})" if not_in else "") + ": its own average is no Average cell")
    if value is None:
        what = {"id_accuracy": "no ID accuracy (an import records it with --id-accuracy)"}.get(
            source, f"no value for '{source}'")
        if source in (benchmark_ood_sets(record.benchmark) or ()) and source not in record.ood_sets:
            what = f"no scores of the OOD set {source} (a partial import; import that set too)"
        if source.startswith("classify:"):
            what = (f"no accuracy of the official Table 7 protocol for {source.partition(':')[2]} (an import "
                    "records it with --classify-accuracy SPLIT=FRACTION)")
        return f"run {record.run_id} stores {what}"
    return ""


@dataclass
class TableResult:
    """A table spec and the value of each of its cells (same order)."""

    spec: TableSpec
    values: list[CellValue]

    def cell(self, row: tuple[str, ...], column: str, metric: str) -> CellValue | None:
        for c, v in zip(self.spec.cells, self.values):
            if c.row == row and c.column == column and c.metric == metric:
                return v
        return None

    @property
    def missing(self) -> int:
        return sum(v.status == "missing" for v in self.values)


def build_table(spec: TableSpec, index: RunIndex) -> TableResult:
    return TableResult(spec, [cell_value(c, index) for c in spec.cells])


def weights_of(result: TableResult, index: RunIndex) -> dict[str, list[str]]:
    """``{backbone: [weights hashes]}`` of the runs a table's cells were computed from."""
    out: dict[str, set[str]] = {}
    for v in result.values:
        for run_id in v.run_ids:
            rec = index.by_id.get(run_id)
            if rec is not None:
                out.setdefault(rec.backbone.get("name", "?"), set()).add(str(rec.backbone.get("weights_hash")))
    return {k: sorted(v) for k, v in sorted(out.items())}


# ------------------------------------------------------------------------------------------------- rendering
def _arrow(metric: str) -> str:
    return "↓" if metric in LOWER_IS_BETTER else ("↑" if metric in METRICS or metric == "Accuracy" else "")


def _grid(result: TableResult) -> tuple[list[tuple[str, ...]], list[tuple[str, str]], dict]:
    spec = result.spec
    rows = spec.rows()
    cols = [(c, m) for c in spec.columns() for m in spec.metrics(c)]
    cells = {(c.row, c.column, c.metric): v for c, v in zip(spec.cells, result.values)}
    return rows, cols, cells


def _row_labels(rows: list[tuple[str, ...]], depth: int) -> list[list[str]]:
    """Row label cells, group labels blanked where they repeat the previous row's (as the paper prints them)."""
    out, prev = [], ()
    for row in rows:
        labels = list(row) + [""] * (depth - len(row))
        shown = []
        same = True
        for i, lab in enumerate(labels):
            same = same and i < len(prev) and prev[i] == lab and i < depth - 1
            shown.append("" if same else lab)
        out.append(shown)
        prev = tuple(labels)
    return out


def _legend(result: TableResult) -> list[str]:
    spec = result.spec
    lines = []
    if spec.caption:
        lines.append(spec.caption)
    statuses = {v.status for v in result.values}
    if "missing" in statuses:
        lines.append(f"`{MISSING}`: no stored run for the cell (`(k/n)`: k of its n seeds) — "
                     "`oodbench tables --dry-run` lists the commands that produce them (`oodbench run`, or "
                     "`oodbench runs import` for per-image scores of other code).")
        lacking = sorted({v.note for v in result.values if v.status == "missing" and v.note})
        if lacking:
            lines.append(f"`{MISSING}` although a run is stored: " + "; ".join(lacking) + ".")
    if any(v.imported for v in result.values):
        lines.append(IMPORT_LEGEND.replace(IMPORT_MARK, f"`{IMPORT_MARK}`", 1) + ".")
    if "blocked" in statuses:
        reasons = sorted({v.note for v in result.values if v.status == "blocked"})
        lines.append(f"`{BLOCKED}`: oodbench cannot produce the cell — " + "; ".join(reasons) + ".")
    if "na" in statuses:
        lines.append(f"`{NA}`: not applicable (the OOD set is not part of the row's benchmark).")
    protocols = sorted({v.protocol for v in result.values if v.spread == "stream orders"})
    if protocols:
        lines.append("Test-time score cells (one run each): mean ± population std over the stream orders of the run ("
                     + "; ".join(p.removeprefix("test-time: ") for p in protocols)
                     + "; one stream per OOD set: ID test + that set).")
    lines += list(spec.notes)
    if spec.paper:
        lines.append(paper_of(spec).table_reference(spec))
    return lines


def to_markdown(result: TableResult) -> str:
    spec = result.spec
    rows, cols, cells = _grid(result)
    depth = len(spec.row_header)
    header = list(spec.row_header) + [f"{c} {m}{_arrow(m)}" if m != c else c for c, m in cols]
    lines = [f"### {spec.title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join([":--"] * depth + ["--:"] * len(cols)) + "|"]
    for labels, row in zip(_row_labels(rows, depth), rows):
        vals = [cells[(row, c, m)].text() if (row, c, m) in cells else "" for c, m in cols]
        lines.append("| " + " | ".join(md_cell(c) for c in labels + vals) + " |")
    lines.append("")
    lines += [line + "  " for line in _legend(result)]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(result: TableResult) -> str:
    """The paper's layout as CSV: row label columns, then one column per (column, metric); values as printed."""
    spec = result.spec
    rows, cols, cells = _grid(result)
    buf = io.StringIO()
    w = csv_writer(buf)  # formula-like text escaped (oodbench.reporting.escape)
    w.writerow(list(spec.row_header) + [f"{c} {m}" if m != c else c for c, m in cols])
    for row in rows:
        labels = list(row) + [""] * (len(spec.row_header) - len(row))
        w.writerow(labels + [cells[(row, c, m)].text() if (row, c, m) in cells else "" for c, m in cols])
    return buf.getvalue()


_TEX = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}", "λ": r"$\lambda$",
        "±": r"$\pm$", "‡": r"$^\ddagger$",
        "↓": r"$\downarrow$", "↑": r"$\uparrow$", "∗": r"$^*$", "†": r"$^\dagger$", "—": "--",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(result: TableResult) -> str:
    """A booktabs ``table`` in the paper's layout: a header row of column groups over a row of metric arrows."""
    spec = result.spec
    rows, cols, cells = _grid(result)
    depth = len(spec.row_header)
    groups: list[tuple[str, int]] = []
    for c, _ in cols:
        if groups and groups[-1][0] == c:
            groups[-1] = (c, groups[-1][1] + 1)
        else:
            groups.append((c, 1))
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{tex_escape(spec.title)}. {tex_escape(spec.caption)}}}",
             rf"\label{{tab:{spec.key.replace('_', '-')}}}",
             r"\begin{tabular}{" + "l" * depth + "r" * len(cols) + "}", r"\toprule"]
    top = [tex_escape(h) for h in spec.row_header] + [
        rf"\multicolumn{{{n}}}{{c}}{{{tex_escape(c)}}}" if n > 1 else tex_escape(c) for c, n in groups]
    lines.append(" & ".join(top) + r" \\")
    if any(n > 1 or c != m for (c, n), (_, m) in zip(groups, cols)):
        rules, start = [], depth + 1
        for _, n in groups:
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        lines.append(" ".join(rules))
        lines.append(" & ".join([""] * depth + [tex_escape(f"{m}{_arrow(m)}") for _, m in cols]) + r" \\")
    lines.append(r"\midrule")
    prev_group = None
    for labels, row in zip(_row_labels(rows, depth), rows):
        if depth > 1 and prev_group is not None and row[0] != prev_group:
            lines.append(r"\midrule")
        prev_group = row[0]
        vals = [tex_escape(cells[(row, c, m)].text()) if (row, c, m) in cells else "" for c, m in cols]
        lines.append(" & ".join([tex_escape(x) for x in labels] + vals) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if any(v.imported for v in result.values):
        lines.append(r"\par\smallskip\footnotesize " + tex_escape(IMPORT_LEGEND.replace("`", "")))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_json(result: TableResult, meta: dict[str, Any] | None = None) -> str:
    """Every cell at full precision (x100), with its status, seeds found, run ids and paper cell."""
    out = []
    for c, v in zip(result.spec.cells, result.values):
        item = {"row": list(c.row), "column": c.column, "metric": c.metric, "status": v.status, "value": v.value,
                "std": v.std, "found": v.found, "needed": v.needed, "runs": list(v.run_ids),
                "specs": [r.describe() for r in c.runs], "note": v.note,
                "paper": [c.paper_row, c.paper_column] if c.paper_row else None}
        if v.spread == "stream orders":  # static and seeded cells keep the earlier keys only
            item.update(std_over=v.spread, protocol=v.protocol)
        if v.imported:
            item["imported"] = True
        out.append(item)
    data = {"table": result.spec.key, "title": result.spec.title,
            "paper": list(result.spec.paper) if result.spec.paper else None, **(meta or {}),
            **({"legend": {IMPORT_MARK: IMPORT_LEGEND}} if any(v.imported for v in result.values) else {}),
            "cells": out}
    return json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n"


# ------------------------------------------------------------------------------------------ paper vs ours
@dataclass(frozen=True)
class Comparison:
    """One cell beside the paper's: ``diff = ours - paper`` (None when either is missing).

    ``deviation``: the key of the paper's :attr:`~oodbench.paper.Paper.deviations` entry behind the cell ('' when none applies).
    ``flagged``: ``|diff|`` exceeds :attr:`band` — :data:`PAPER_TOLERANCE`, or the paper's printed ± where that is
    wider (None when there is no difference to judge).
    """

    row: tuple[str, ...]
    column: str
    metric: str
    ours: CellValue
    paper_row: str
    paper: Any  # PaperCell or None (the paper prints nothing there)
    deviation: str = ""

    @property
    def diff(self) -> float | None:
        p = getattr(self.paper, "value", None)
        if self.ours.status not in ("ok", "static") or not isinstance(p, (int, float)) \
                or not isinstance(self.ours.value, (int, float)):
            return None
        return float(self.ours.value) - float(p)

    @property
    def band(self) -> float:
        """The allowed ``|ours - paper|``: the tolerance, or the paper's ± std where it prints a wider one."""
        std = getattr(self.paper, "std", None)
        return max(PAPER_TOLERANCE, float(std)) if isinstance(std, (int, float)) else PAPER_TOLERANCE

    @property
    def flagged(self) -> bool | None:
        d = self.diff
        return None if d is None else abs(d) > self.band + 1e-9


#: Tolerance of the "paper vs ours" view, in the tables' units (x100 points): reruns of the official code are not
#: bit-stable (about 0.1 between two runs of the same model, spec §11.7), and two decimals are printed.
PAPER_TOLERANCE = 0.5


def compare_with_paper(result: TableResult, paper_root: str | Path | None = None) -> list[Comparison]:
    """Each cell of ours that has a paper counterpart in the table ``result.spec.paper``, with that paper cell."""
    spec = result.spec
    if spec.paper is None:
        return []
    cells = paper_of(spec).published_cells(spec.paper[0], spec.paper[1], paper_root)
    published = {(p.row, p.column, p.metric): p for p in cells}
    out = []
    for c, v in zip(spec.cells, result.values):
        if c.paper_row is None or c.na:
            continue
        p = published.get((c.paper_row, c.paper_column or c.column, c.metric))
        if p is None and v.status != "ok":
            continue
        out.append(Comparison(c.row, c.column, c.metric, v, c.paper_row, p, c.deviation))
    return out


def _flag_text(c: Comparison) -> str:
    if c.flagged is None:
        return ""
    return f"beyond ±{c.band:.2f}" if c.flagged else "within"


def _deviation_legend(comparisons: list[Comparison], spec: TableSpec) -> list[str]:
    keys = sorted({c.deviation for c in comparisons if c.deviation})
    paper = paper_of(spec) if keys else None
    return [paper.deviation_legend(k) for k in keys]


def _paper_text(p: Any) -> str:
    if p is None:
        return "(not in the paper)"
    if p.value is None:
        return "-" if p.not_applicable else "(not reported)"
    return p.printed + (f" ± {p.std:.2f}" if p.std is not None else "")


def comparison_markdown(result: TableResult, comparisons: list[Comparison]) -> str:
    spec = result.spec
    lines = [f"### {spec.title} — ours vs. the paper (Table {spec.paper[1]}, {spec.paper[0]})", "",
             "| row | column | metric | ours | paper | ours − paper | flag | known deviation |",
             "|:--|:--|:--|--:|--:|--:|:--|:--|"]
    for c in comparisons:
        diff = f"{c.diff:+.2f}" if c.diff is not None else ""
        lines.append(f"| {md_cell(' / '.join(c.row))} | {md_cell(c.column)} | {c.metric}{_arrow(c.metric)} | "
                     f"{md_cell(c.ours.text())} | "
                     f"{_paper_text(c.paper)} | {diff} | {'**' + _flag_text(c) + '**' if c.flagged else _flag_text(c)}"
                     f" | {c.deviation} |")
    flagged = sum(bool(c.flagged) for c in comparisons)
    lines += ["", f"Flag: `beyond ±x` when |ours − paper| exceeds {PAPER_TOLERANCE:.2f} (points x100), or the "
                  f"paper's printed ± where that is wider; {flagged} of {sum(c.flagged is not None for c in comparisons)}"
                  " compared cells are flagged."] + _deviation_legend(comparisons, result.spec)
    lines += ["", "Ours are never filled from the paper: a cell without a stored run is `missing`. The paper's row "
                  "for each of ours: " + "; ".join(sorted({f"{' / '.join(c.row)} → {c.paper_row}"
                                                           for c in comparisons}))[:4000] + "."]
    if any(c.ours.imported for c in comparisons):
        lines.append(IMPORT_LEGEND.replace(IMPORT_MARK, f"`{IMPORT_MARK}`", 1) + ".")
    return "\n".join(lines) + "\n"


def comparison_csv(comparisons: list[Comparison]) -> str:
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["row", "column", "metric", "ours", "ours_std", "ours_status", "paper_row", "paper", "paper_std",
                "diff", "ours_imported", "band", "flagged", "deviation"])
    for c in comparisons:
        p = c.paper
        w.writerow([" / ".join(c.row), c.column, c.metric,
                    "" if c.ours.status != "ok" else f"{c.ours.value:.4f}",
                    "" if c.ours.std is None else f"{c.ours.std:.4f}", c.ours.status, c.paper_row,
                    "" if p is None or p.value is None else p.printed, "" if p is None or p.std is None else p.std,
                    "" if c.diff is None else f"{c.diff:.4f}", "yes" if c.ours.imported else "",
                    f"{c.band:.4f}", "" if c.flagged is None else ("yes" if c.flagged else "no"), c.deviation])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------- writing
def write_table(result: TableResult, out_dir: str | Path, meta: dict[str, Any] | None = None,
                paper_root: str | Path | None = None) -> list[Path]:
    """``<key>.md``, ``.csv``, ``.tex``, ``.json`` (and ``<key>_vs_paper.md/.csv`` for a paper table) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = result.spec.key
    files = {f"{key}.md": to_markdown(result), f"{key}.csv": to_csv(result), f"{key}.tex": to_latex(result),
             f"{key}.json": to_json(result, meta)}
    if result.spec.paper is not None:
        comparisons = compare_with_paper(result, paper_root)
        files[f"{key}_vs_paper.md"] = comparison_markdown(result, comparisons)
        files[f"{key}_vs_paper.csv"] = comparison_csv(comparisons)
    written = []
    for name, text in files.items():
        write_text(out / name, text)
        written.append(out / name)
    return written
