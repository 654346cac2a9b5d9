"""The paper contract: what a paper plugin declares, and the specs its tables and figures are made of.

A *paper* (registry kind ``papers``, entry-point group ``oodbench.papers``, or a ``--plugin FILE.py``) is a
:class:`Paper` subclass registered under a name: it lists its experiments (tables and figures, each cell naming
the stored runs it is the mean of), its variants, its known deviations and where its published numbers are
(package data in the long form :data:`PUBLISHED_FIELDS`). ``oodbench tables --paper NAME``, ``oodbench list
papers`` and :func:`get_paper` work for any registered paper; the reporting code reads only this contract.

Vocabulary:

* :class:`RunSpec` — one stored run: benchmark, backbone (+ weights), method and its options, postprocessor and
  its hyperparameters, seed, and for the per-step figures the number of search steps of the plan kept. It is
  what :mod:`oodbench.reporting.tables` looks for in the results store and :mod:`oodbench.orchestration.sweep` runs.
* :class:`Cell` — one printed number: a row (the group labels and the row label), a column, a metric, and the runs
  it is the mean of (one per seed; ± std when there are several). A cell with no runs is static (dataset
  statistics) or not applicable (``-`` in the paper: the OOD set shares classes with the ID set).
* :class:`TableSpec` — the cells of one table in the paper's layout, and the paper table it mirrors.
* :class:`FigureSpec` — the series of one figure (x values and the runs of each point).
* :class:`Experiment` — what ``oodbench tables --table ID`` names: the paper's summary table, its per-OOD-set
  detail table and its figures share one set of runs.
* :class:`Deviation` — one place where the run behind a paper's printed numbers differs from its text.

This module is data only: no model library is imported, nothing is run. It names no paper, method or score.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from oodbench.errors import UserError

#: Paper metric labels -> stored metric names (fractions; tables show x100).
METRICS = {"FPR95": "fpr95", "AUROC": "auroc"}
LOWER_IS_BETTER = {"FPR95"}


@dataclass(frozen=True)
class Deviation:
    """One place where the run behind the paper's printed numbers differs from the paper's text.

    Attributes:
        key: short id (cells name it in ``Cell.deviation``).
        case: which tables / cells.
        text: what the paper's text says.
        published: what the published run used.
        source: the file(s) and key(s) of the paper's official code or logs that show it.
        default: what oodbench's specs do by default (``variant="published"``).
        text_variant: how to run the text's setting.
    """

    key: str
    case: str
    text: str
    published: str
    source: str
    default: str
    text_variant: str



def score_label(post: str) -> str:
    """The score's label in the tables: the ``display_name`` the registered postprocessor declares (``glmcm`` ->
    ``GL-MCM``, ``csp`` -> ``CSP``), else its registry name. Read through the registry, so that a plugin score gets
    its own label and this module names no postprocessor module."""
    if post not in _LABELS:
        from oodbench.registry import RegistryError, get

        try:
            cls = get("postprocessors", post)
        except RegistryError:
            _LABELS[post] = post
        else:
            title = getattr(cls, "title", None)
            _LABELS[post] = str(title() if callable(title) else getattr(cls, "display_name", "") or post)
    return _LABELS[post]


_LABELS: dict[str, str] = {}



def _canon(obj: Any) -> str:
    return json.dumps(obj if obj is not None else {}, sort_keys=True, separators=(",", ":"))


def _method_defaults(method: str) -> dict[str, Any]:
    """Options of ``method`` whose default does not depend on the backbone or benchmark (dropped from specs and
    from stored options before comparing, so that ``--searcher setar-s`` matches the default)."""
    from oodbench.method import method_class

    return method_class(method).option_defaults()


def _is_method(name: str) -> bool:
    from oodbench.registry import registry

    return name in registry("methods")


def normalize_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` without None values, in the method's canonical spelling (``Method.canonical_options``), without
    those equal to a fixed default, tuples as lists, nested dicts too."""
    from oodbench.method import method_class

    defaults = _method_defaults(method)
    out = {}
    options = method_class(method).canonical_options({k: v for k, v in (options or {}).items() if v is not None})
    for k, v in options.items():
        if v is None or (k in defaults and v == defaults[k]):
            continue
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, dict):
            v = normalize_options(k if _is_method(k) else method, v)  # a nested method's options (SeTAR+FT)
        out[k] = v
    return out



@dataclass(frozen=True)
class RunSpec:
    """One stored run a cell needs.

    Attributes:
        benchmark: registered benchmark name.
        backbone: registered backbone name.
        post: postprocessor registry name.
        method: method registry name (``none`` = the vanilla model).
        options_json: the method's options as canonical JSON (use :attr:`options`); ``{}`` = its presets.
        params_json: the postprocessor's hyperparameters that differ from its defaults (use :attr:`params`).
        seed: the run's ``--seed`` (None: the result does not depend on it; any seed is taken).
        step: for the per-step figures: the SeTAR plan of :attr:`options` truncated to its first ``step``
            search steps (None: the whole plan).
        pretrained: the weights (None: the backbone's published default).
        blocked: why this run cannot be produced by oodbench ('' when it can).
    """

    benchmark: str
    backbone: str
    post: str
    method: str = "none"
    options_json: str = "{}"
    params_json: str = "{}"
    seed: int | None = None
    step: int | None = None
    pretrained: str | None = None
    blocked: str = ""

    @classmethod
    def make(cls, benchmark: str, backbone: str, post: str, method: str = "none",
             options: dict[str, Any] | None = None, params: dict[str, Any] | None = None, seed: int | None = None,
             step: int | None = None, pretrained: str | None = None, blocked: str = "") -> "RunSpec":
        return cls(benchmark, backbone, post, method, _canon(normalize_options(method, options)), _canon(params), seed,
                   step, pretrained, blocked)

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json)

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    def group_key(self) -> tuple:
        """Runs sharing this key are evaluated by one pipeline call (one modification, several scores)."""
        return (self.benchmark, self.backbone, self.pretrained, self.method, self.options_json, self.seed, self.step)

    def with_(self, **changes: Any) -> "RunSpec":
        data = {**self.__dict__, **changes}
        return RunSpec(**data)

    def describe(self) -> str:
        """One line: ``imagenet1k / clip_vit_b16 / setar(lam=0.05) / mcm / seed 3``."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        parts = [self.benchmark, self.backbone + (f" [{self.pretrained}]" if self.pretrained else ""),
                 self.method + (f"({opts})" if opts else ""), self.post + (f"({params})" if params else "")]
        if self.step is not None:
            parts.append(f"first {self.step} search steps")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " / ".join(parts)


@dataclass(frozen=True)
class Cell:
    """One printed number.

    Attributes:
        row: the group labels and the row label, outer first (``("ImageNet1K", "MCM Score", "SeTAR")``).
        column: the column label (an OOD set, ``Average``, or what the table puts in its columns).
        metric: ``FPR95``, ``AUROC``, ``Accuracy`` or a statistics label (``Test Size`` ...).
        runs: the runs the cell is the mean of (one per seed); empty for static and not-applicable cells.
        source: what is read from each run: an OOD set name, ``"average"``, or ``"id_accuracy"``.
        static: the value of a static cell (dataset statistics).
        na: not applicable (printed ``-``).
        paper_row, paper_column: the paper cell this one reproduces (None: the paper has no counterpart).
        deviation: key of the :data:`DEVIATIONS` entry behind this cell ('' when none applies): its published run
            differs from the paper's text, and the spec follows one of the two (see the table's notes).
    """

    row: tuple[str, ...]
    column: str
    metric: str
    runs: tuple[RunSpec, ...] = ()
    source: str = "average"
    static: Any = None
    na: bool = False
    paper_row: str | None = None
    paper_column: str | None = None
    deviation: str = ""

    @property
    def blocked(self) -> str:
        """Why the cell cannot be produced ('' when it can)."""
        return next((r.blocked for r in self.runs if r.blocked), "")


@dataclass(frozen=True)
class TableSpec:
    """The cells of one table, in reading order.

    Attributes:
        key: file stem of the rendered table (``table03_modality``).
        title: one line.
        row_header: names of the row label levels (``("ID set", "Score", "Modality")``).
        cells: every cell (rows and columns appear in first-seen order).
        paper: ``(version, table number)`` of the paper table it mirrors, or None.
        caption: what the numbers are (conventions, seeds).
        notes: where this table deviates from the paper or cannot be produced.
    """

    key: str
    title: str
    row_header: tuple[str, ...]
    cells: tuple[Cell, ...]
    paper: tuple[str, int] | None = None
    caption: str = ""
    notes: tuple[str, ...] = ()

    def runs(self) -> list[RunSpec]:
        return list(dict.fromkeys(r for c in self.cells for r in c.runs))

    def rows(self) -> list[tuple[str, ...]]:
        return list(dict.fromkeys(c.row for c in self.cells))

    def columns(self) -> list[str]:
        return list(dict.fromkeys(c.column for c in self.cells))

    def metrics(self, column: str | None = None) -> list[str]:
        return list(dict.fromkeys(c.metric for c in self.cells if column is None or c.column == column))


@dataclass(frozen=True)
class Series:
    """One line of a figure: points ``(x, runs)`` in one panel."""

    panel: str
    label: str
    points: tuple[tuple[float, tuple[RunSpec, ...]], ...]


@dataclass(frozen=True)
class FigureSpec:
    """A figure.

    Attributes:
        kind: ``"sensitivity"`` (average metric vs a hyperparameter), ``"weight-types"`` (average metric vs the
            number of searched weight matrices, one line per weight type), ``"loss-curves"`` (training losses of
            the fine-tuning runs, x = seed) or ``"plan-map"`` (the rank-ratio map of each series' SeTAR plan).
        key: file stem.
    """

    kind: str
    key: str
    title: str
    xlabel: str
    series: tuple[Series, ...]
    caption: str = ""
    log_x: bool = False

    def runs(self) -> list[RunSpec]:
        return list(dict.fromkeys(r for s in self.series for _, runs in s.points for r in runs))


@dataclass(frozen=True)
class Experiment:
    """What ``oodbench tables --table ID`` names: tables and figures sharing one set of runs."""

    id: str
    title: str
    tables: tuple[TableSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    notes: tuple[str, ...] = ()

    def runs(self) -> list[RunSpec]:
        out: dict[RunSpec, None] = {}
        for t in self.tables:
            out.update(dict.fromkeys(t.runs()))
        for f in self.figures:
            out.update(dict.fromkeys(f.runs()))
        return list(out)


# -------------------------------------------------------------------------------------------- building blocks
@dataclass(frozen=True)
class Condition:
    """One row condition of an experiment: label, method, options, seeds, and its label in the paper."""

    label: str
    method: str = "none"
    options: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int | None, ...] = (None,)
    paper: str | None = None  # paper row label (the last level); None: no counterpart
    backbone: str | None = None  # overrides the experiment's backbone
    blocked: str = ""
    deviation: str = ""  # a DEVIATIONS key when the published run differs from the text here
    # benchmark -> (method, options, seeds, deviation) replacing this condition's for that benchmark
    by_benchmark: dict[str, tuple] = field(default_factory=dict)

    def on(self, benchmark: str) -> "Condition":
        """This condition as it applies to ``benchmark`` (``by_benchmark`` overrides)."""
        if benchmark not in self.by_benchmark:
            return self
        method, options, seeds, deviation = self.by_benchmark[benchmark]
        return Condition(self.label, method, options, seeds, self.paper, self.backbone, self.blocked, deviation)

    def runs(self, benchmark: str, backbone: str, post: str, params: dict | None = None) -> tuple[RunSpec, ...]:
        cond = self.on(benchmark)
        return tuple(RunSpec.make(benchmark, cond.backbone or backbone, post, cond.method, cond.options, params,
                                  seed, blocked=cond.blocked) for seed in cond.seeds)

    def __hash__(self) -> int:  # options is a dict
        return hash((self.label, self.method, _canon(self.options), self.seeds))


@dataclass(frozen=True)
class IdSet:
    """An ID set of the experiment: its label in the tables, benchmark, OOD sets (column names)."""

    label: str
    benchmark: str
    ood_sets: tuple[str, ...]


def ood_sets_of(benchmark: str) -> tuple[str, ...]:
    """OOD test set names of a registered benchmark, in its order (no data is read)."""
    from oodbench.benchmark import get_benchmark

    return tuple(s.name for s in get_benchmark(benchmark).ood)



def detail_cells(id_sets: Iterable[IdSet], scores: Iterable[str], conditions: Iterable[Condition], backbone: str,
                 columns: Iterable[str], *, score_level: str = "{} Score", paper_path: bool = True,
                 params: dict[str, dict] | None = None, metrics=("FPR95", "AUROC")) -> tuple[Cell, ...]:
    """Cells of a per-OOD-set table: rows (ID set, score, condition), columns the OOD sets and ``Average``.

    A column that is not one of the row's benchmark OOD sets is not applicable (``-``).
    """
    cells = []
    columns = list(columns)
    for ids in id_sets:
        for post in scores:
            score = score_level.format(score_label(post))
            for cond in conditions:
                runs = cond.runs(ids.benchmark, backbone, post, dict((params or {}).get(post, {})))
                dev = cond.on(ids.benchmark).deviation
                row = (ids.label, score, cond.label)
                paper = cond.paper.format(score=score_label(post)) if cond.paper else None
                paper_row = " / ".join((ids.label, score, paper)) if (paper and paper_path) else paper
                for col in columns + ["Average"]:
                    for m in metrics:
                        if col == "Average":
                            cells.append(Cell(row, col, m, runs, "average", paper_row=paper_row, paper_column=col,
                                              deviation=dev))
                        elif col in ids.ood_sets:
                            cells.append(Cell(row, col, m, runs, col, paper_row=paper_row, paper_column=col,
                                              deviation=dev))
                        else:
                            cells.append(Cell(row, col, m, na=True, paper_row=paper_row, paper_column=col))
    return tuple(cells)


def summary_cells(id_sets: Iterable[IdSet], scores: Iterable[str], conditions: Iterable[Condition], backbone: str,
                  *, paper_columns: dict[str, str] | None = None, params: dict[str, dict] | None = None,
                  metrics=("FPR95", "AUROC")) -> tuple[Cell, ...]:
    """Cells of a summary table (Tables 3-6): rows (ID set, score), one column per condition, average metrics."""
    cells = []
    for ids in id_sets:
        for post in scores:
            label = score_label(post)
            for cond in conditions:
                runs = cond.runs(ids.benchmark, backbone, post, dict((params or {}).get(post, {})))
                pcol = (paper_columns or {}).get(cond.label, cond.label) if cond.paper is not None else None
                for m in metrics:
                    cells.append(Cell((ids.label, label), cond.label, m, runs, "average",
                                      paper_row=f"{ids.label} / {label}" if pcol else None, paper_column=pcol,
                                      deviation=cond.on(ids.benchmark).deviation))
    return tuple(cells)



def select(exps: list[Experiment], table: str | None) -> list[Experiment]:
    """The experiments ``--table`` names: ``all`` / None, an experiment id, or a paper table number."""
    if table in (None, "", "all"):
        return list(exps)
    t = str(table).strip().lower().removeprefix("table")
    for e in exps:
        if e.id == table or e.id == t:
            return [e]
    if t.isdigit():
        for e in exps:
            if any(s.paper and s.paper[1] == int(t) for s in e.tables):
                return [e]
    known = ", ".join(e.id for e in exps)
    numbers = sorted({s.paper[1] for e in exps for s in e.tables if s.paper})
    raise UserError(f"unknown table {table!r} — choose all, one of: {known}"
                    + (f", or a paper table number ({', '.join(map(str, numbers))})" if numbers else ""))


def with_pretrained(exp: Experiment, mapping: dict[str, str]) -> Experiment:
    """``exp`` with the weights of the backbones in ``mapping`` (``{"clip_vit_b16": "/w/ViT-B-16.pt"}``) set in
    every run spec."""
    from dataclasses import replace

    def fix(r: RunSpec) -> RunSpec:
        return r.with_(pretrained=mapping[r.backbone]) if r.backbone in mapping else r

    tables = tuple(replace(t, cells=tuple(replace(c, runs=tuple(fix(r) for r in c.runs)) for c in t.cells))
                   for t in exp.tables)
    figures = tuple(replace(f, series=tuple(replace(s, points=tuple((x, tuple(fix(r) for r in runs))
                                                                    for x, runs in s.points)) for s in f.series))
                    for f in exp.figures)
    return replace(exp, tables=tables, figures=figures)


# ------------------------------------------------------------------------------------------ published numbers
#: Columns of a published table in long form, one printed cell per line (the ``version`` and ``table`` columns
#: say which table of which paper version the cell is from).
PUBLISHED_FIELDS = ("version", "table", "row", "column", "metric", "value", "std", "marker", "note")
ROW_MARKERS = "†∗"


@dataclass(frozen=True)
class PaperCell:
    """One printed cell of a paper table.

    Attributes:
        value: the number as a float, a text value (``"ID"``/``"OOD"`` in dataset statistics), or ``None`` for an
            empty cell (``−`` not applicable, ``⋄`` not reported).
        std: the ``±`` standard deviation as a float, else ``None``.
        printed: the value as printed (keeps trailing zeros), ``""`` for an empty cell.
    """

    version: str
    table: int
    row: str
    column: str
    metric: str
    value: float | str | None
    std: float | None
    marker: str
    note: str
    printed: str

    @property
    def cited(self) -> bool:
        """Marked † — cited from another paper."""
        return "†" in self.marker

    @property
    def rerun(self) -> bool:
        """Marked ∗ — the authors' re-run of a baseline."""
        return "∗" in self.marker

    @property
    def not_applicable(self) -> bool:
        """Printed ``-``: the OOD set overlaps the ID classes."""
        return "−" in self.marker

    @property
    def not_reported(self) -> bool:
        """Printed ``⋄``: absent from the cited paper."""
        return "⋄" in self.marker


def read_csv(path: Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file whose header must be exactly ``fields`` (ValueError otherwise). Lines starting with
    ``#`` before the header are comments (where the numbers were transcribed from)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(line for line in f if not line.startswith("#"))
        if tuple(reader.fieldnames or ()) != fields:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(fields)}")
        return list(reader)


def paper_cell(d: dict[str, str]) -> PaperCell:
    """A :class:`PaperCell` from one long-form row (strings as printed)."""
    raw = d["value"]
    if raw == "":
        value: float | str | None = None
    else:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    return PaperCell(version=d["version"], table=int(d["table"]), row=d["row"], column=d["column"],
                     metric=d["metric"], value=value, std=float(d["std"]) if d["std"] else None,
                     marker=d["marker"], note=d["note"], printed=raw)


# ---------------------------------------------------------------------------------------------- the contract
class Paper:
    """A paper whose tables and figures oodbench regenerates from stored runs.

    Subclass it, set the class attributes and implement :meth:`experiments`; register the class with
    ``@register("papers", "name", aliases=(...))`` (or an entry point in the group ``oodbench.papers``).

    Attributes:
        title: the paper's title, authors and venue in one line (the output's heading and ``oodbench list``).
        version: what the paper's :class:`TableSpec` s put in ``TableSpec.paper[0]`` (the registered name or an
            alias of it), and the name of the default output folder ``results/tables/<version>``.
        variants: the configurations its specs can follow (``"published"`` first: the runs behind the printed
            numbers; e.g. ``"text"``: the paper's text where the two differ).
        deviations: the known differences between the published runs and the text (``Cell.deviation`` keys).
        published_data: the package (dotted name) holding the published numbers, ``published_dir`` inside it:
            one long-form CSV per table, ``table{NN}.csv`` with the columns :data:`PUBLISHED_FIELDS`. None: the
            paper ships no numbers (no "paper vs ours" view).
        output: the default output folder (default ``results/tables/<version>``).
    """

    title: str = ""
    version: str = ""
    variants: tuple[str, ...] = ("published",)
    deviations: dict[str, Deviation] = {}
    published_data: str | None = None
    published_dir: str = "."
    output: str | None = None

    def experiments(self, variant: str = "published") -> list[Experiment]:
        """Every experiment (tables and figures) of the paper, following ``variant``."""
        raise NotImplementedError

    # --------------------------------------------------------------------------------- derived, overridable
    def check_variant(self, variant: str) -> str:
        if variant not in self.variants:
            raise UserError(f"unknown variant {variant!r} — choose one of: {', '.join(self.variants)}")
        return variant

    def out_dir(self, variant: str = "published") -> Path:
        """Where ``oodbench tables`` writes by default (a variant other than the first gets its own folder)."""
        base = Path(self.output) if self.output else Path("results") / "tables" / (self.version or "paper")
        return base if variant == self.variants[0] else base.with_name(f"{base.name}-{variant}")

    def table_reference(self, spec: TableSpec) -> str:
        """The line naming the paper table a spec mirrors (``spec.paper`` is not None)."""
        return f"Paper: {self.title or self.version}, Table {spec.paper[1]}."

    def heading(self) -> str:
        return f"{self.title or self.version} tables"

    def command(self) -> str:
        """The command that regenerates the tables (written into the index)."""
        return f"oodbench tables --paper {self.version}"

    def published_root(self, root: str | Path | None = None) -> Path | None:
        if root is not None:
            return Path(root)
        if self.published_data is None:
            return None
        return Path(str(resources.files(self.published_data))) / self.published_dir

    def published_cells(self, version: str, number: int, root: str | Path | None = None) -> list[PaperCell]:
        """The printed cells of table ``number`` (``version``: ``TableSpec.paper[0]``), in reading order."""
        base = self.published_root(root)
        if base is None:
            return []
        path = base / f"table{int(number):02d}.csv"
        if not path.is_file():
            raise UserError(f"{self.version}: published numbers of table {number} not found: {path} — they ship "
                            "with the paper plugin as package data; reinstall it or pass the folder of a copy")
        return [paper_cell(d) for d in read_csv(path, PUBLISHED_FIELDS)]

    def deviation_legend(self, key: str) -> str:
        d = self.deviations[key]
        return (f"Known deviation `{key}` ({d.case}): the paper's text says {d.text}; the published run used "
                f"{d.published} ({d.source}); oodbench's default: {d.default}; the text's setting: "
                f"{d.text_variant}.")


def get_paper(name: str) -> Paper:
    """The registered paper ``name`` (or an alias), instantiated; unknown names raise a one-line error."""
    from oodbench.registry import RegistryError, get

    try:
        cls = get("papers", name)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    return cls() if isinstance(cls, type) else cls


def paper_of(spec: TableSpec) -> Paper | None:
    """The paper whose table ``spec`` mirrors (``spec.paper[0]`` names it), or None."""
    return get_paper(spec.paper[0]) if spec.paper else None


def experiments(paper: str, benchmark: str | None = None, variant: str = "published") -> list[Experiment]:
    """The experiments of the registered paper ``paper`` following ``variant``; ``benchmark``: where a paper is
    registered under that benchmark's name (an edition of a paper on that benchmark), that one instead (the older
    spelling ``oodbench tables --benchmark NAME``)."""
    from oodbench.registry import registry

    if benchmark is not None and benchmark in registry("papers"):
        return get_paper(benchmark).experiments(variant)
    return get_paper(paper).experiments(variant)
