"""Experiment specs: which runs produce each cell of each table and figure of the SeTAR paper (both versions) and
of the digits edition.

Paper: Li, Xiong, Chen, Chen, *SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation*,
NeurIPS 2024 (``neurips``, Tables 1-19) and its extended arXiv version (``arxiv``, Tables 1-22). The published
numbers are in ``oodbench/assets/paper/`` (:mod:`oodbench.results.paper`); the labels below are the paper's, so
that every cell of ours can be set beside the paper's cell it reproduces.

Vocabulary:

* :class:`RunSpec` — one stored run: benchmark, backbone (+ weights), method and its options, postprocessor and
  its hyperparameters, seed, and for the per-step figures the number of search steps of the plan kept. It is
  what :mod:`oodbench.results.tables` looks for in the results store and :mod:`oodbench.results.sweep` runs.
* :class:`Cell` — one printed number: a row (the group labels and the row label), a column, a metric, and the runs
  it is the mean of (one per seed; ± std when there are several). A cell with no runs is static (dataset
  statistics) or not applicable (``-`` in the paper: the OOD set shares classes with the ID set).
* :class:`TableSpec` — the cells of one table in the paper's layout, and the paper table it mirrors.
* :class:`FigureSpec` — the series of one figure (x values and the runs of each point).
* :class:`Experiment` — what ``oodbench tables --table ID`` names: the paper's summary table, its per-OOD-set
  detail table and its figures share one set of runs.

This module is data only: no model library is imported, nothing is run.

Decisions where the paper is silent (each also noted in the experiment that uses it):

* Seeds: the fine-tuning rows and the random prune strategy use seeds 3, 4 and 5 (mean ± population std,
  ``numpy.std``, as OpenOOD's ``eval_ood.py``); the random-prune seed is the run's ``--seed``. Training-free
  rows are deterministic and run once.
* Swin-V2-B's Energy score uses temperature 0.1 (paper Sec. 4.1 / Table 10 note); MSP temperature 1.
* ResNet-50 baselines use the settings of the cited paper (Djurisic et al., 2023): ReAct p=90, DICE p=70,
  ASH-P p=90, ASH-B p=65, ASH-S p=90. The SeTAR row combines SeTAR with ASH-S p=90 (the paper does not say which
  ASH variant).
* Top-K equal to the number of ID classes (the paper's K=1000 for ImageNet-1K, K=14 for Pascal-VOC) leaves no OOD
  patch, so the OOD term vanishes and the search minimises the ID loss only; oodbench runs it with a warning.
* Table 7's SUN, Places and Texture columns classify the OOD images with their own class names; oodbench ships no
  labels for them (see :data:`CLASSIFY_LABELS_NEEDED`), so they show as blocked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from oodbench.errors import UserError

#: Paper metric labels -> stored metric names (fractions; tables show x100).
METRICS = {"FPR95": "fpr95", "AUROC": "auroc"}
LOWER_IS_BETTER = {"FPR95"}
#: Seeds of every seeded row (fine-tuning, random pruning).
SEEDS = (3, 4, 5)
PAPER_VERSIONS = ("neurips", "arxiv")

#: Method registry name -> label.
METHOD_LABELS = {"none": "Vanilla", "setar": "SeTAR", "setar-ft": "SeTAR+FT", "lora": "LoRA", "locoop": "LoCoOp"}
#: Paper backbone labels -> registered backbones.
PAPER_BACKBONES = {"CLIP-base": "clip_vit_b16", "CLIP-large": "clip_vit_l14", "Swin-base": "swinv2_b",
                   "ResNet50": "resnet50"}
#: Paper ID-set labels -> registered benchmarks.
PAPER_ID_SETS = {"ImageNet1K": "imagenet1k", "Pascal-VOC": "voc"}
#: Number of search steps of a SeTAR-S search over both towers (blocks of the vision tower + the text tower;
#: digits_clip: 4 + 3).
SEARCH_STEPS = {"clip_vit_b16": 24, "clip_vit_l14": 48, "digits_clip": 7}
WEIGHT_TYPES = ("W_q", "W_k", "W_v", "W_o", "W_up", "W_down")
PAPER_OOD_ORDER = ("iNaturalist", "SUN", "Places", "Texture", "ImageNet22K", "COCO")


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

#: What a user must supply for the OOD-set columns of Table 7 (classification accuracy on SUN, Places, Texture).
CLASSIFY_LABELS_NEEDED = (
    "Table 7 classifies the OOD images of SUN, Places and Texture with their own class names. oodbench ships no "
    "labels for them. A user must provide, per set, the class of every test image and the class names: the "
    "official SeTAR repository's data/OOD_Sun/sun_test_label.json and data/OOD_Places/places_test_label.json "
    "(file name -> class name for the 10,000 MOS images each) and data/OOD_Texture/texture_test_label.json (or "
    "DTD's 47 class folders, which the Texture layout already keeps), sorted into one folder per class, then "
    "evaluate each folder as an ad-hoc benchmark (--id-test DIR --classes FILE) with the ImageNet-1K SeTAR plan "
    "(--method setar --plan FILE) or fine-tuned weights (--pretrained FILE / --prompts FILE); the run's "
    "id_accuracy is the cell. These columns are not automated and show as blocked.")


def _canon(obj: Any) -> str:
    return json.dumps(obj if obj is not None else {}, sort_keys=True, separators=(",", ":"))


def _method_defaults(method: str) -> dict[str, Any]:
    """Options of ``method`` whose default does not depend on the backbone or benchmark (dropped from specs and
    from stored options before comparing, so that ``--searcher setar-s`` matches the default)."""
    from oodbench.method import method_class

    return method_class(method).option_defaults()


def normalize_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` without None values, without those equal to a fixed default, tuples as lists, nested dicts too."""
    defaults = _method_defaults(method)
    out = {}
    for k, v in (options or {}).items():
        if v is None or (k in defaults and v == defaults[k]):
            continue
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, dict):
            v = normalize_options(method if k != "setar" else "setar", v)
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

    def runs(self, benchmark: str, backbone: str, post: str, params: dict | None = None) -> tuple[RunSpec, ...]:
        return tuple(RunSpec.make(benchmark, self.backbone or backbone, post, self.method, self.options, params,
                                  seed, blocked=self.blocked) for seed in self.seeds)

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


def _params_for(post: str, backbone: str, extra: dict[str, dict] | None = None) -> dict[str, Any]:
    params = dict((extra or {}).get(post, {}))
    if post == "energy" and backbone == "swinv2_b":
        params.setdefault("temperature", 0.1)
    return params


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
                runs = cond.runs(ids.benchmark, backbone, post, _params_for(post, cond.backbone or backbone, params))
                row = (ids.label, score, cond.label)
                paper = cond.paper.format(score=score_label(post)) if cond.paper else None
                paper_row = " / ".join((ids.label, score, paper)) if (paper and paper_path) else paper
                for col in columns + ["Average"]:
                    for m in metrics:
                        if col == "Average":
                            cells.append(Cell(row, col, m, runs, "average", paper_row=paper_row, paper_column=col))
                        elif col in ids.ood_sets:
                            cells.append(Cell(row, col, m, runs, col, paper_row=paper_row, paper_column=col))
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
                runs = cond.runs(ids.benchmark, backbone, post, _params_for(post, cond.backbone or backbone, params))
                pcol = (paper_columns or {}).get(cond.label, cond.label) if cond.paper is not None else None
                for m in metrics:
                    cells.append(Cell((ids.label, label), cond.label, m, runs, "average",
                                      paper_row=f"{ids.label} / {label}" if pcol else None, paper_column=pcol))
    return tuple(cells)


def _conventions(seeded: bool = False) -> str:
    text = ("Values x100, 2 decimals. FPR95: fraction of OOD accepted at 95% ID recall (ID positive, nearest "
            "recall to 95%), lower is better; AUROC higher is better; Average = plain mean over the row's OOD sets.")
    if seeded:
        text += f" Seeded rows: mean ± population std over seeds {', '.join(map(str, SEEDS))}."
    return text


# ---------------------------------------------------------------------------------------------- the paper
def _paper_id_sets(names: Iterable[str] = ("ImageNet1K", "Pascal-VOC")) -> list[IdSet]:
    return [IdSet(n, PAPER_ID_SETS[n], ood_sets_of(PAPER_ID_SETS[n])) for n in names]


def _num(version: str, neurips: int | None, arxiv: int | None) -> tuple[str, int] | None:
    n = neurips if version == "neurips" else arxiv
    return (version, n) if n is not None else None


def _key(paper: tuple[str, int] | None, name: str) -> str:
    return f"table{paper[1]:02d}_{name}" if paper else name


def _ablation(version: str, eid: str, title: str, conditions: list[Condition], level: str, nums: tuple,
              summary_columns: dict[str, str] | None = None, notes: tuple[str, ...] = ()) -> Experiment:
    """A training-free CLIP-B ablation on ImageNet-1K and Pascal-VOC: summary (averages) + detail table."""
    ids = _paper_id_sets()
    seeded = any(len(c.seeds) > 1 for c in conditions)
    s_paper, d_paper = _num(version, *nums[0]), _num(version, *nums[1])
    summary = TableSpec(_key(s_paper, eid), title, ("ID set", "Score"),
                        summary_cells(ids, ("mcm", "glmcm"), conditions, "clip_vit_b16",
                                      paper_columns=summary_columns),
                        s_paper, "CLIP-B/16; average over the OOD sets. " + _conventions(seeded), notes)
    detail = TableSpec(_key(d_paper, eid + "_detail"), title + " — per OOD set", ("ID set", "Score", level),
                       detail_cells(ids, ("mcm", "glmcm"), conditions, "clip_vit_b16", PAPER_OOD_ORDER),
                       d_paper, "CLIP-B/16. " + _conventions(seeded), notes)
    return Experiment(eid, title, (summary, detail), notes=notes)


def paper_experiments(version: str = "neurips") -> list[Experiment]:
    """Every experiment of the paper version ``version`` (``neurips`` or ``arxiv``)."""
    if version not in PAPER_VERSIONS:
        raise UserError(f"unknown paper version {version!r} — choose one of: {', '.join(PAPER_VERSIONS)}")
    arxiv = version == "arxiv"
    ids = _paper_id_sets()
    exps: list[Experiment] = []

    # Table 1: training-free CLIP-B vs the zero-shot baselines
    t1 = _num(version, 1, 1)
    conds = {"mcm": [Condition("Vanilla MCM", paper="Vanilla MCM∗"), Condition("SeTAR", "setar", paper="SeTAR")],
             "glmcm": [Condition("Vanilla GL-MCM", paper="Vanilla GL-MCM∗"), Condition("SeTAR", "setar", paper="SeTAR")]}
    cells = sum((detail_cells(ids, (post,), c, "clip_vit_b16", PAPER_OOD_ORDER) for post, c in conds.items()), ())
    cells = tuple(sorted(cells, key=lambda c: [i.label for i in ids].index(c.row[0])))
    exps.append(Experiment("table1", "Training-free SeTAR vs. zero-shot baselines", (
        TableSpec(_key(t1, "training_free"), "Training-free SeTAR vs. zero-shot baselines (CLIP-B/16)",
                  ("ID set", "Score", "Method"), cells, t1,
                  "CLIP-B/16, SeTAR-S search with the Table 10 presets. " + _conventions(),
                  ("The paper's † rows (cited from Miyai et al. 2023b) are the same methods as its ∗ re-runs; ours are "
                   "compared with the ∗ rows.",)),)))

    # Table 2 / 12: fine-tuning
    ft_blocks = [("CLIP-base", ("mcm", "glmcm"), [("LoCoOp", "locoop", "LoCoOp∗"), ("LoRA", "lora", "LoRA∗"),
                                                   ("SeTAR+FT", "setar-ft", "SeTAR+FT")]),
                 ("CLIP-large", ("mcm", "glmcm"), [("LoCoOp", "locoop", "LoCoOp∗"), ("LoRA", "lora", "LoRA∗"),
                                                    ("SeTAR+FT", "setar-ft", "SeTAR+FT")]),
                 ("Swin-base", ("msp", "energy"), [("LoRA", "lora", "LoRA∗"), ("SeTAR+FT", "setar-ft", "SeTAR+FT")])]
    s_paper, d_paper = _num(version, 2, 2), _num(version, 12, 14)
    summary, detail = [], []
    imagenet = ids[0]
    score_cols = ("MCM Score", "GL-MCM Score", "MSP Score", "Energy Score")
    for bb_label, posts, methods in ft_blocks:
        bb = PAPER_BACKBONES[bb_label]
        for label, method, paper in methods:
            cond = Condition(label, method, seeds=SEEDS, paper=paper)
            for col in score_cols:
                post = {"MCM Score": "mcm", "GL-MCM Score": "glmcm", "MSP Score": "msp", "Energy Score": "energy"}[col]
                for m in METRICS:
                    if post in posts:
                        summary.append(Cell((bb_label, label), col, m, cond.runs("imagenet1k", bb, post,
                                                                                 _params_for(post, bb)),
                                            "average", paper_row=f"{bb_label} / {paper}", paper_column=col))
                    else:
                        summary.append(Cell((bb_label, label), col, m, na=True))
        for post in posts:
            for label, method, paper in methods:
                cond = Condition(label, method, seeds=SEEDS, paper=paper)
                for cell in detail_cells([imagenet], (post,), [cond], bb, imagenet.ood_sets):
                    detail.append(Cell((bb_label,) + cell.row[1:], cell.column, cell.metric, cell.runs, cell.source,
                                       na=cell.na, paper_row=f"{bb_label} / {cell.row[1]} / {paper}",
                                       paper_column=cell.column))
    ft_notes = ("NPOS and CoOp (cited rows) are not oodbench methods; LoCoOp† is the cited number of the method "
                "whose re-run is LoCoOp∗ (ours is compared with ∗).",
                "Fine-tuning on the ID val split (1 image per class) with the presets of Table 11; seeds 3, 4, 5.")
    exps.append(Experiment("finetune", "Fine-tuning: LoCoOp, LoRA, SeTAR+FT on ImageNet-1K", (
        TableSpec(_key(s_paper, "finetune"), "Fine-tuning results on ImageNet-1K (averages)", ("Backbone", "Method"),
                  tuple(summary), s_paper, _conventions(True), ft_notes),
        TableSpec(_key(d_paper, "finetune_detail"), "Fine-tuning results on ImageNet-1K — per OOD set",
                  ("Backbone", "Score", "Method"), tuple(detail), d_paper, _conventions(True), ft_notes)),
        figures=(_loss_figure("fig6_loss_curves", "imagenet1k", "clip_vit_b16",
                              "SeTAR+FT vs LoRA training losses (CLIP-B/16, ImageNet-1K)"),)))

    # Tables 3-6 (+ details): modality, W_p, searcher, prune
    exps.append(_ablation(version, "modality", "Modality searched (vision, text, both)", [
        Condition("Vision", "setar", {"modality": "vision"}, paper="Visual"),
        Condition("Text", "setar", {"modality": "text"}, paper="Text"),
        Condition("Vision+Text", "setar", {"modality": "both"}, paper="Visual+Text")], "Modality",
        ((3, 3), (13, 15)), {"Vision": "Vision", "Text": "Text", "Vision+Text": "Vision+Text"}))
    exps.append(_ablation(version, "wp", "SeTAR with and without the projections W_p", [
        Condition("Vanilla", paper="Vanilla {score}"),
        Condition("SeTAR w Wp", "setar", {"include_projection": True}, paper="SeTAR w Wp"),
        Condition("SeTAR w/o Wp", "setar", {"include_projection": False}, paper="SeTAR w/o Wp")], "Method",
        ((4, 4), (14, 16))))
    exps.append(_ablation(version, "searcher", "Search algorithms (LES, MIS, SeTAR-S)", [
        Condition("LES", "setar", {"searcher": "les"}, paper="LES"),
        Condition("MIS", "setar", {"searcher": "mis"}, paper="MIS"),
        Condition("SeTAR-S", "setar", {"searcher": "setar-s"}, paper="SeTAR-S")], "Searcher",
        ((5, 5), (16, 18))))
    exps.append(_ablation(version, "prune", "Pruning strategies (principal, random, minor)", [
        Condition("Principle", "setar", {"prune": "principal"}, paper="Principle"),
        Condition("Random", "setar", {"prune": "random"}, seeds=SEEDS, paper="Random"),
        Condition("Minor", "setar", {"prune": "minor"}, paper="Minor")], "Prune",
        ((6, 6), (18, 20)), notes=("Random: the random-prune seed is the run's seed (3, 4, 5); mean ± std.",)))

    # Table 7: classification accuracy
    acc = _num(version, 7, 7)
    cells = []
    for label, method, seeds, paper in (("Vanilla CLIP", "none", (None,), "Vanilla CLIP∗"),
                                        ("LoCoOp", "locoop", SEEDS, "LoCoOp∗"), ("LoRA", "lora", SEEDS, "LoRA∗"),
                                        ("SeTAR", "setar", (None,), "SeTAR"), ("SeTAR+FT", "setar-ft", SEEDS, "SeTAR+FT")):
        runs = tuple(RunSpec.make("imagenet1k", "clip_vit_b16", "mcm", method, seed=s) for s in seeds)
        cells.append(Cell((label,), "IN1K", "Accuracy", runs, "id_accuracy", paper_row=paper, paper_column="IN1K"))
        for col in ("SUN", "Places", "Texture"):
            blocked = tuple(r.with_(blocked="needs per-image class labels of the OOD set (see notes)") for r in runs)
            cells.append(Cell((label,), col, "Accuracy", blocked, "id_accuracy", paper_row=paper, paper_column=col))
        cells.append(Cell((label,), "Average", "Accuracy", tuple(r.with_(blocked="needs the SUN, Places and Texture "
                                                                                  "columns") for r in runs),
                          "id_accuracy", paper_row=paper, paper_column="Average"))
    exps.append(Experiment("accuracy", "Classification accuracy (ID ImageNet-1K)", (
        TableSpec(_key(acc, "accuracy"), "Image classification accuracy (ID ImageNet-1K, CLIP-B/16)", ("Method",),
                  tuple(cells), acc, "Top-1 accuracy x100 of zero-shot classification with the benchmark's class "
                  "names and prompt (standard zero-shot accuracy; the paper's test_classify uses WordNet lemmas, "
                  "spec §11.6). Seeded rows: mean ± std over seeds 3, 4, 5.", (CLASSIFY_LABELS_NEEDED,)),)))

    # Table 8 / 15 (/ 17 with NegLabel): backbones
    rows = []  # (id set, backbone label, post, paper detail backbone label)
    if arxiv:
        rows.append(("ImageNet1K", "CLIP-base", "neglabel"))
    rows += [("ImageNet1K", "CLIP-large", "mcm"), ("ImageNet1K", "CLIP-large", "glmcm"),
             ("ImageNet1K", "Swin-base", "msp"), ("ImageNet1K", "Swin-base", "energy"),
             ("Pascal-VOC", "CLIP-large", "mcm"), ("Pascal-VOC", "CLIP-large", "glmcm")]
    s_paper, d_paper = _num(version, 8, 8), _num(version, 15, 17)
    summary = []
    for id_label, bb_label, post in rows:
        bb, bench = PAPER_BACKBONES[bb_label], PAPER_ID_SETS[id_label]
        for col, method in (("Vanilla Method", "none"), ("SeTAR", "setar")):
            runs = (RunSpec.make(bench, bb, post, method, params=_params_for(post, bb)),)
            for m in METRICS:
                summary.append(Cell((id_label, bb_label, score_label(post)), col, m, runs, "average",
                                    paper_row=f"{id_label} / {bb_label} / {score_label(post)}", paper_column=col))
    detail = []
    detail_rows = [("ImageNet1K", "CLIP-base", ("mcm", "glmcm") + (("neglabel",) if arxiv else ())),
                   ("ImageNet1K", "CLIP-large", ("mcm", "glmcm")), ("ImageNet1K", "Swin-base", ("msp", "energy")),
                   ("Pascal-VOC", "CLIP-base", ("mcm", "glmcm")), ("Pascal-VOC", "CLIP-large", ("mcm", "glmcm"))]
    for id_label, bb_label, posts in detail_rows:
        bb, bench = PAPER_BACKBONES[bb_label], PAPER_ID_SETS[id_label]
        ids_ = IdSet(id_label, bench, ood_sets_of(bench))
        paper_bb = "SwinTransformerV2-base" if bb_label == "Swin-base" else bb_label
        for post in posts:
            score = score_label(post)
            mark = "†" if post == "neglabel" else "∗"
            for cond in (Condition(f"Vanilla {score}", paper=f"Vanilla {score}{mark}"),
                         Condition(f"SeTAR+{score}", "setar", paper=f"SeTAR+{score}")):
                for cell in detail_cells([ids_], (post,), [cond], bb, PAPER_OOD_ORDER):
                    detail.append(Cell((id_label, bb_label, cond.label), cell.column, cell.metric, cell.runs,
                                       cell.source, na=cell.na, paper_row=f"{id_label} / {paper_bb} / {cond.paper}",
                                       paper_column=cell.column))
    bb_notes = ("Swin-V2-B: SeTAR on the vision tower only; Energy with temperature 0.1 (paper Sec. 4.1).",
                "CLIP-L/14 uses the Table 10 presets (lambda 0.50 / 0.30, K 300 / 6).")
    if arxiv:
        bb_notes += ("NegLabel: oodbench's defaults (WordNet corpus, 100 groups); the vanilla NegLabel row of the paper "
                     "is cited from Jiang et al. (2024).",)
    exps.append(Experiment("backbones", "Backbones: CLIP-L/14, Swin-V2-B" + (", CLIP-B/16 + NegLabel" if arxiv else ""), (
        TableSpec(_key(s_paper, "backbones"), "Different backbones (averages)", ("ID set", "Backbone", "Score"),
                  tuple(summary), s_paper, _conventions(), bb_notes),
        TableSpec(_key(d_paper, "backbones_detail"), "Different backbones — per OOD set", ("ID set", "Backbone", "Method"),
                  tuple(detail), d_paper, _conventions(), bb_notes)),
        figures=(_plan_figure("fig7_plan_maps", [("IN1K CLIP-B", "imagenet1k", "clip_vit_b16"),
                                                 ("VOC CLIP-B", "voc", "clip_vit_b16"),
                                                 ("IN1K CLIP-L", "imagenet1k", "clip_vit_l14"),
                                                 ("VOC CLIP-L", "voc", "clip_vit_l14"),
                                                 ("IN1K Swin-B", "imagenet1k", "swinv2_b")]),)))

    # Table 9 / 11: dataset statistics
    exps.append(_datasets_experiment(_num(version, 9, 11), ["imagenet1k", "voc"],
                                     {"ImageNet-1K test": "ImageNet1K", "VOC test": "Pascal-VOC"}))

    # Tables 17 / 19 (Figures 4-5): lambda and top-K
    lambdas = (0.01, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
    exps.append(_sensitivity(version, "lambda", "Sensitivity to lambda (Figure 4)", "lam", "λ",
                             {i: lambdas for i in ids}, _num(version, 17, 19), "fig4_lambda",
                             "λ (weight of the LoCoOp OOD term)", fmt="{:.2f}"))
    ks = {ids[0]: (0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000), ids[1]: (0, 2, 4, 6, 8, 10, 12, 14)}
    exps.append(_sensitivity(version, "topk", "Sensitivity to top-K (Figure 5)", "top_k", "top-K", ks,
                             _num(version, 19, 21), "fig5_topk", "K (top-K of the OOD patch mask)", fmt="{:d}"))

    # Figures 2-3: weight types per visited layer
    exps.append(_weight_types("weight-types", ids, "clip_vit_b16", "fig2_3_weight_types",
                              "Weight types: average metric vs searched weight matrices (Figures 2-3)"))

    if arxiv:
        exps.append(_resnet50(version))
        exps.append(_near_ood(version))
    return exps


def _loss_figure(key: str, benchmark: str, backbone: str, title: str) -> FigureSpec:
    series = tuple(Series("loss", METHOD_LABELS[m], tuple((float(s), (RunSpec.make(benchmark, backbone, "mcm", m, seed=s),))
                                                          for s in SEEDS)) for m in ("setar-ft", "lora"))
    return FigureSpec("loss-curves", key, title, "training step", series,
                      "LoCoOp loss = ID loss − λ · OOD entropy term, per optimisation step; mean over seeds 3, 4, 5 "
                      "(band: min-max).")


def _plan_figure(key: str, items: list[tuple[str, str, str]]) -> FigureSpec:
    series = tuple(Series(label, label, ((0.0, (RunSpec.make(bench, bb, "msp" if bb == "swinv2_b" else "mcm", "setar"),)),))
                   for label, bench, bb in items)
    return FigureSpec("plan-map", key, "SeTAR rank-reduction ratio per layer (Figure 7)", "tower / weight type", series,
                      "Fraction of singular values removed per weight; blank: weights the search leaves out.")


def _datasets_experiment(paper: tuple[str, int] | None, benchmarks: list[str], id_labels: dict[str, str],
                         key: str = "datasets") -> Experiment:
    """Dataset statistics from the benchmark specs (expected image counts; no data is read)."""
    from oodbench.benchmark import get_benchmark

    cells, seen = [], set()
    for b in benchmarks:
        spec = get_benchmark(b)
        label = id_labels.get(spec.id_test.name, spec.id_test.name)
        if label not in seen:
            seen.add(label)
            for col, value in (("Type", "ID"), ("Valid Size", spec.id_val.expected if spec.id_val else 0),
                               ("Test Size", spec.id_test.expected)):
                cells.append(Cell((label,), col, col, static=value, paper_row=label, paper_column=col))
        for s in spec.ood:
            if s.name in seen:
                continue
            seen.add(s.name)
            for col, value in (("Type", "OOD" if s.group == "far" else "OOD (near)"), ("Valid Size", 0),
                               ("Test Size", s.expected)):
                cells.append(Cell((s.name,), col, col, static=value, paper_row=s.name, paper_column=col))
    return Experiment(key, "Dataset statistics", (
        TableSpec(_key(paper, "datasets"), "Dataset statistics", ("Dataset",), tuple(cells), paper,
                  "Image counts the benchmark specs expect (oodbench data verify checks them); valid = the ID val "
                  "split the SeTAR search and fine-tuning read."),))


def _sensitivity(version: str | None, eid: str, title: str, option: str, symbol: str, values: dict[IdSet, tuple],
                 paper: tuple[str, int] | None, fig_key: str, xlabel: str, fmt: str = "{}",
                 backbone: str = "clip_vit_b16",
                 columns: tuple[str, ...] = PAPER_OOD_ORDER) -> Experiment:
    cells, series = [], []
    for ids, vals in values.items():
        for post in ("mcm", "glmcm"):
            points = []
            for v in vals:
                cond = Condition(fmt.format(v), "setar", {option: v}, paper=fmt.format(v))
                cells.extend(detail_cells([ids], (post,), [cond], backbone, columns))
                points.append((float(v), cond.runs(ids.benchmark, backbone, post)))
            series.append(Series(ids.label, f"SeTAR+{score_label(post)}", tuple(points)))
    table = TableSpec(_key(paper, f"{eid}"), title, ("ID set", "Score", symbol), tuple(cells), paper,
                      f"CLIP-B/16, SeTAR-S with {symbol} varied, the other settings the presets. " + _conventions()
                      if backbone == "clip_vit_b16" else f"SeTAR-S with {symbol} varied. " + _conventions())
    fig = FigureSpec("sensitivity", fig_key, title, xlabel, tuple(series),
                     f"SeTAR-S with {symbol} varied, the other search settings at their presets; one search per value.")
    return Experiment(eid, title, (table,), (fig,))


def _weight_types(eid: str, id_sets: list[IdSet], backbone: str, key: str, title: str) -> Experiment:
    steps = SEARCH_STEPS[backbone]
    series = []
    for ids in id_sets:
        for post in ("mcm", "glmcm"):
            for wt in WEIGHT_TYPES:
                points = tuple((float(k), (RunSpec.make(ids.benchmark, backbone, post, "setar", {"weight_type": wt},
                                                        step=k),)) for k in range(steps + 1))
                series.append(Series(f"{ids.label} / {score_label(post)}", wt, points))
    fig = FigureSpec("weight-types", key, title, "weight matrices searched (search steps)", tuple(series),
                     "SeTAR-S over both towers with one weight type per run; after each step the plan so far is "
                     "evaluated on the test splits (step 0: the vanilla model).")
    return Experiment(eid, title, (), (fig,))


def _resnet50(version: str) -> Experiment:
    imagenet = IdSet("ImageNet1K", "imagenet1k", ood_sets_of("imagenet1k"))
    params = {"dice": {"percentile": 70}, "ash_b": {"percentile": 65}}
    rows = [("Softmax", "msp", "none"), ("Energy", "energy", "none"), ("ReAct", "react", "none"),
            ("DICE", "dice", "none"), ("ASH-P", "ash_p", "none"), ("ASH-B", "ash_b", "none"),
            ("ASH-S", "ash_s", "none"), ("SeTAR", "ash_s", "setar")]
    summary, detail = [], []
    for label, post, method in rows:
        paper = label + ("†" if method == "none" else "")
        runs = (RunSpec.make("imagenet1k", "resnet50", post, method, params=params.get(post)),)
        for m in METRICS:
            summary.append(Cell((label,), "Average", m, runs, "average", paper_row=paper, paper_column="Average"))
        for col in imagenet.ood_sets + ("Average",):
            for m in METRICS:
                detail.append(Cell((label,), col, m, runs, "average" if col == "Average" else col, paper_row=paper,
                                   paper_column=col))
    notes = ("Baselines with the settings of Djurisic et al. (2023): ReAct p=90, DICE p=70, ASH-P p=90, ASH-B p=65, "
             "ASH-S p=90; torchvision ResNet-50 weights (tv_in1k, the paper's footnote 10).",
             "SeTAR row: SeTAR (ID loss only, lambda 0, as the paper) scored with ASH-S p=90 — the paper does not say "
             "which ASH variant it combines with.")
    return Experiment("resnet50", "ResNet-50 vs. Softmax, Energy, ReAct, DICE, ASH", (
        TableSpec(_key(_num(version, None, 9), "resnet50"), "ResNet-50 on ImageNet-1K (averages)", ("Method",),
                  tuple(summary), _num(version, None, 9), _conventions(), notes),
        TableSpec(_key(_num(version, None, 22), "resnet50_detail"), "ResNet-50 on ImageNet-1K — per OOD set",
                  ("Method",), tuple(detail), _num(version, None, 22), _conventions(), notes)))


def _near_ood(version: str) -> Experiment:
    cells = []
    for label, method, seeds, cat in (("Vanilla", "none", (None,), "Training-Free"),
                                      ("SeTAR", "setar", (None,), "Training-Free"),
                                      ("LoCoOp", "locoop", SEEDS, "Training-Free"),
                                      ("LoRA", "lora", SEEDS, "Finetuning"),
                                      ("SeTAR+FT", "setar-ft", SEEDS, "Finetuning")):
        for post in ("mcm", "glmcm"):
            runs = tuple(RunSpec.make("ssb_hard", "clip_vit_b16", post, method, seed=s) for s in seeds)
            col = f"{score_label(post)} Score"
            for m in METRICS:
                cells.append(Cell((label,), col, m, runs, "ssb_hard", paper_row=f"{label} / {cat}", paper_column=col))
    paper = _num(version, None, 10)
    return Experiment("near-ood", "Near-OOD: ImageNet-1K vs. SSB-Hard", (
        TableSpec(_key(paper, "near_ood"), "Near-OOD: ImageNet-1K (ID) vs. SSB-Hard (CLIP-B/16)", ("Method",),
                  tuple(cells), paper, "SSB-Hard is the only OOD set. " + _conventions(True),
                  ("The SeTAR plan and the fine-tuned models are those of ImageNet-1K (same ID val split and classes, "
                   "so the cached ones are reused); the fine-tuned rows are means over seeds 3, 4, 5.",)),))


# ------------------------------------------------------------------------------------------- digits edition
DIGITS_LAMBDAS = (0.01, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
DIGITS_TOPK = (0, 1, 2, 3, 4, 5)
#: Scores of the digits "beyond the paper" table: the paper's two and the negative-label scores after it.
BEYOND_SCORES = ("mcm", "glmcm", "neglabel", "csp", "adaneg")


def digits_experiments() -> list[Experiment]:
    """The analogous tables and figures on the embedded digits benchmark (``digits_clip``)."""
    bench, bb = "digits", "digits_clip"
    ids = [IdSet("Digits 0-5", bench, ood_sets_of(bench))]
    cols = ids[0].ood_sets
    conv = _conventions()
    exps: list[Experiment] = []

    conds = [Condition("Vanilla"), Condition("SeTAR", "setar")]
    exps.append(Experiment("table1", "Training-free SeTAR vs. vanilla (digits)", (
        TableSpec("table1", "Training-free SeTAR vs. vanilla (digits_clip, Table 1 analogue)",
                  ("ID set", "Score", "Method"), detail_cells(ids, ("mcm", "glmcm"), conds, bb, cols), None,
                  "digits_clip; SeTAR-S with the digits preset (lambda 0.10, K 2). " + conv),)))

    exps.append(Experiment("beyond", "Beyond the paper: NegLabel, CSP and AdaNeg with SeTAR (digits)", (
        TableSpec("beyond", "Scores beyond the paper, vanilla and SeTAR (digits_clip)", ("ID set", "Score", "Method"),
                  detail_cells(ids, BEYOND_SCORES, conds, bb, cols), None,
                  "digits_clip; SeTAR-S with the digits preset (lambda 0.10, K 2), the same plan for every score. "
                  "Every score at its defaults; NegLabel, CSP and AdaNeg mine their negative labels from the shipped "
                  "WordNet corpus with the digits_clip text tower. " + conv,
                  ("AdaNeg adapts to the test stream: its cells are the mean ± population std over the declared "
                   "stream orders (one stream per OOD set, ID test + that set, shuffled by each order seed, the "
                   "reference batch size); the other scores are static and deterministic (one run).",
                   "digits_clip was trained on digit prompts only: the general English words NegLabel, CSP and "
                   "AdaNeg use as negatives mean little to its text tower (results/digits/README.md).")),)))

    ft = [Condition("Vanilla"), Condition("SeTAR", "setar"), Condition("LoCoOp", "locoop", seeds=SEEDS),
          Condition("LoRA", "lora", seeds=SEEDS), Condition("SeTAR+FT", "setar-ft", seeds=SEEDS)]
    summary = []
    for cond in ft:
        for post in ("mcm", "glmcm"):
            for m in METRICS:
                summary.append(Cell((cond.label,), f"{score_label(post)} Score", m, cond.runs(bench, bb, post),
                                    "average"))
    exps.append(Experiment("finetune", "Fine-tuning (digits)", (
        TableSpec("finetune", "Fine-tuning on digits (Table 2 analogue, averages)", ("Method",), tuple(summary), None,
                  "digits_clip; fine-tuning on the 120-image ID val split with the digits presets; LoCoOp, LoRA and "
                  "SeTAR+FT over seeds 3, 4, 5 (mean ± population std); Vanilla and SeTAR are training-free and "
                  "deterministic (one run). " + _conventions()),
        TableSpec("finetune_detail", "Fine-tuning on digits — per OOD set (Table 12 analogue)",
                  ("ID set", "Score", "Method"), detail_cells(ids, ("mcm", "glmcm"), ft, bb, cols), None,
                  "Seeded rows: mean ± population std over seeds 3, 4, 5. " + conv)),
        figures=(_loss_figure("fig6_loss_curves", bench, bb, "SeTAR+FT vs LoRA training losses (digits_clip)"),)))

    def ablation(eid, title, conditions, level, notes=()):
        seeded = any(len(c.seeds) > 1 for c in conditions)
        return Experiment(eid, title, (
            TableSpec(eid, title + " (averages)", ("ID set", "Score"),
                      summary_cells(ids, ("mcm", "glmcm"), conditions, bb), None,
                      "digits_clip; average over the OOD sets. " + _conventions(seeded), notes),
            TableSpec(f"{eid}_detail", title + " — per OOD set", ("ID set", "Score", level),
                      detail_cells(ids, ("mcm", "glmcm"), conditions, bb, cols), None, _conventions(seeded), notes)))

    exps.append(ablation("modality", "Modality searched (digits)", [
        Condition("Vision", "setar", {"modality": "vision"}), Condition("Text", "setar", {"modality": "text"}),
        Condition("Vision+Text", "setar", {"modality": "both"})], "Modality"))
    exps.append(ablation("wp", "SeTAR with and without W_p (digits)", [
        Condition("Vanilla"), Condition("SeTAR w Wp", "setar", {"include_projection": True}),
        Condition("SeTAR w/o Wp", "setar", {"include_projection": False})], "Method"))
    mis_blocked = ("MIS interleaves the towers block by block and needs towers of equal depth; digits_clip has 4 "
                   "vision and 3 text blocks")
    exps.append(ablation("searcher", "Search algorithms (digits)", [
        Condition("LES", "setar", {"searcher": "les"}),
        Condition("MIS", "setar", {"searcher": "mis"}, blocked=mis_blocked),
        Condition("SeTAR-S", "setar", {"searcher": "setar-s"})], "Searcher"))
    exps.append(ablation("prune", "Pruning strategies (digits)", [
        Condition("Principal", "setar", {"prune": "principal"}),
        Condition("Random", "setar", {"prune": "random"}, seeds=SEEDS),
        Condition("Minor", "setar", {"prune": "minor"})], "Prune",
        ("Random: the random-prune seed is the run's seed (3, 4, 5); mean ± std.",)))

    exps.append(_sensitivity(None, "lambda", "Sensitivity to lambda (digits)", "lam", "λ", {ids[0]: DIGITS_LAMBDAS},
                             None, "fig4_lambda", "λ (weight of the LoCoOp OOD term)", fmt="{:.2f}", backbone=bb,
                             columns=cols))
    exps.append(_sensitivity(None, "topk", "Sensitivity to top-K (digits)", "top_k", "top-K", {ids[0]: DIGITS_TOPK},
                             None, "fig5_topk", "K (top-K of the OOD patch mask; 6 ID classes)", fmt="{:d}",
                             backbone=bb, columns=cols))
    exps.append(_weight_types("weight-types", ids, bb, "fig2_3_weight_types",
                              "Weight types: average metric vs searched weight matrices (digits)"))

    cells = []
    for cond in ft:
        runs = cond.runs(bench, bb, "mcm")
        cells.append(Cell((cond.label,), "Digits 0-5", "Accuracy", runs, "id_accuracy"))
    exps.append(Experiment("accuracy", "ID classification accuracy (digits)", (
        TableSpec("accuracy", "ID classification accuracy (digits_clip, Table 7 analogue)", ("Method",),
                  tuple(cells), None, "Top-1 zero-shot accuracy x100 on the ID test split (digits 0-5); seeded rows "
                  "mean ± std over seeds 3, 4, 5. The OOD sets have no class labels, so only the ID column exists."),),
        figures=(_plan_figure("fig7_plan_map", [("Digits 0-5 digits_clip", bench, bb)]),)))
    exps.append(_datasets_experiment(None, [bench], {}))
    return exps


# --------------------------------------------------------------------------------------------------- lookup
def experiments(paper: str = "neurips", benchmark: str | None = None) -> list[Experiment]:
    """The experiments of ``paper`` (or of the digits edition when ``benchmark == "digits"``)."""
    if benchmark == "digits":
        return digits_experiments()
    return paper_experiments(paper)


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
