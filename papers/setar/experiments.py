"""Experiment specs: which runs produce each cell of each table and figure of the SeTAR paper (both versions) and
of the digits edition.

Paper: Li, Xiong, Chen, Chen, *SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation*,
NeurIPS 2024 (``neurips``, Tables 1-19) and its extended arXiv version (``arxiv``, Tables 1-22). The published
numbers are in ``papers/setar/data/`` (:mod:`oodbench.papers.setar.published`); the labels below are the paper's, so
that every cell of ours can be set beside the paper's cell it reproduces.

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

This module is data only: no model library is imported, nothing is run.

Published run vs paper text: where the official configs, code and released logs behind a printed number differ
from the paper's text, the specs follow the published run (``variant="published"``, the default) and keep the
text's setting as ``variant="text"`` (``oodbench tables --variant text``). Every such case is one
:class:`Deviation` in :data:`DEVIATIONS`; the cells it affects name it (``Cell.deviation``), and the "paper vs
ours" view says so beside them. In short: Swin-V2-B fine-tuning columns (MSP at T = 100 and GL-MCM over the
classifier's logits at T = 100, not MSP / Energy at T = 1 / 0.1), Swin-V2-B training-free Energy at T = 1 (not
0.1), LoRA alpha 8 (not 16), Table 7 with the official label lists and protocol, and ImageNet-1K "Random"
pruning = principal pruning.

Decisions where the paper is silent (each also noted in the experiment that uses it):

* Seeds: the fine-tuning rows and the random prune strategy use seeds 3, 4 and 5 (mean ± population std,
  ``numpy.std``, as OpenOOD's ``eval_ood.py``); the random-prune seed is the run's ``--seed``. Training-free
  rows are deterministic and run once. (The official configs run seed 5 only; the seeds 3 and 4 come from the
  ``random_seed{3,4,5}.json`` pruning configs.)
* ResNet-50 baselines use the settings of the cited paper (Djurisic et al., 2023): ReAct p=90, DICE p=70,
  ASH-P p=90, ASH-B p=65, ASH-S p=90. The SeTAR row combines SeTAR with ASH-S p=90 (the paper does not say which
  ASH variant).
* Top-K equal to the number of ID classes (the paper's K=1000 for ImageNet-1K, K=14 for Pascal-VOC) leaves no OOD
  patch, so the OOD term vanishes and the search minimises the ID loss only; oodbench runs it with a warning.
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
#: Number of search steps of a SeTAR-S search over both towers (blocks of the vision tower + the text tower:
#: CLIP-B/16 12 + 12, CLIP-L/14 24 + 12 (spec §4.1: "36 for CLIP-L"), digits_clip 4 + 3).
SEARCH_STEPS = {"clip_vit_b16": 24, "clip_vit_l14": 36, "digits_clip": 7}
WEIGHT_TYPES = ("W_q", "W_k", "W_v", "W_o", "W_up", "W_down")
PAPER_OOD_ORDER = ("iNaturalist", "SUN", "Places", "Texture", "ImageNet22K", "COCO")
#: Which configuration the paper's specs follow where the published runs and the paper's text differ.
VARIANTS = ("published", "text")


@dataclass(frozen=True)
class Deviation:
    """One place where the run behind the paper's printed numbers differs from the paper's text.

    Attributes:
        key: short id (cells name it in ``Cell.deviation``).
        case: which tables / cells.
        text: what the paper's text says.
        published: what the published run used.
        source: the file(s) and key(s) of the official repository (``X1AOX1A/SeTAR``) that show it.
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


_DEVIATIONS = (
    Deviation("swin-ft-scores", "Swin-V2-B fine-tuning columns: NeurIPS Tables 2 / 12, arXiv Tables 2 / 14",
              "MSP and Energy scores; temperature 1, 0.1 for Energy (Table 11 caption)",
              "scorers mcm_score and gl_mcm_score at temperature 100: 'MSP' = max softmax(logits / 100), "
              "'Energy' = GL-MCM over the global and per-patch classifier logits / 100",
              "configs/finetune/swin_base/ID_ImageNet1K/{LoRA,SeTAR+FT}.json: scorers, temperature; "
              "src/svd_ood/svd_ood/scorers.py",
              "'MSP Score' = msp(temperature=100), 'Energy Score' = glmcm_logits(temperature=100)",
              "oodbench tables --table finetune --variant text (msp T=1, energy T=0.1)"),
    Deviation("swin-energy-temperature", "Swin-V2-B training-free Energy: NeurIPS Tables 8 / 15, arXiv Tables 8 / 17",
              "Energy with temperature T = 0.1 (Sec. 4.5, Table 10 caption)",
              "temperature 1 (released scores equal the printed 65.01 / 76.10 and 51.61 / 84.42)",
              "configs/training_free/swin_base/ID_ImageNet/Vanilla_energy.json and SeTAR.json: temperature",
              "energy at temperature 1 (its default)",
              "oodbench tables --table backbones --variant text (energy T=0.1)"),
    Deviation("lora-alpha", "LoRA rows: NeurIPS Tables 2 / 12 / 7 and Figure 6, arXiv Tables 2 / 14 / 7 / 10",
              "LoRA alpha 16 (Table 11; lora_alpha 16 in the config files)",
              "peft's default alpha 8: finetune.py never passes lora_alpha to the LoRA config (scaling 8 / r)",
              "finetune.py (ModifiedLoraConfig built without lora_alpha); configs/finetune/*/ID_ImageNet1K/LoRA.json: "
              "lora_alpha (unused)",
              "lora with alpha 8 (--lora-alpha 8, the same run as --lora-alpha-official)",
              "oodbench tables --variant text (alpha 16, the lora method's default)"),
    Deviation("table7-labels", "Table 7 (classification accuracy), every column",
              "image classification accuracy of the ID and OOD test sets",
              "test_classify.py: prompts 'a photo of a {name}' over the distinct names of the set's official label "
              "list (ImageNet-1K: WordNet first lemmas, 998 names), argmax, accuracy over the list",
              "test_classify.py; data/ID_ImageNet1K/imagenet1k_test_label.json, data/OOD_Sun/sun_test_label.json, "
              "data/OOD_Places/places_test_label.json, data/OOD_Texture/texture_test_label.json",
              "the official protocol with the shipped label lists (oodbench.classify; every CLIP run on imagenet1k "
              "records it); LoCoOp's cells blocked (its learned prompts belong to the benchmark's class names)",
              "oodbench tables --table accuracy --variant text (standard zero-shot accuracy, ID column only)"),
    Deviation("imagenet-random-prune", "ImageNet-1K 'Random' pruning: NeurIPS Tables 6 / 18, arXiv Tables 6 / 20",
              "random pruning (drop randomly chosen singular components)",
              "lora_svd_init_type 'large' = principal pruning (hence Random = Principle in the printed table)",
              "configs/abs_prune_type/clip_base/ID_ImageNet1K/random_seed{3,4,5}.json: lora_svd_init_type",
              "principal pruning (the Principle column's run)",
              "oodbench tables --table prune --variant text (prune random, seeds 3, 4, 5)"),
)
#: Every known difference between a published run and the paper's text, by key.
DEVIATIONS: dict[str, Deviation] = {d.key: d for d in _DEVIATIONS}


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r} — choose one of: {', '.join(VARIANTS)}")
    return variant


def deviation_note(key: str, variant: str) -> str:
    """One line for a table's notes: what the published run used and which setting this table follows."""
    d = DEVIATIONS[key]
    if variant == "text":
        return f"Paper-text variant ({d.case}): {d.text}; the published run used {d.published} ({d.source})."
    return (f"Published run ({d.case}): {d.published} ({d.source}); the paper's text says {d.text} — "
            f"{d.text_variant}.")


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


def _params_for(post: str, backbone: str, extra: dict[str, dict] | None = None,
                variant: str = "published") -> dict[str, Any]:
    """Hyperparameters of ``post`` in a training-free cell. Swin-V2-B Energy: T = 1 as the official configs
    (``DEVIATIONS["swin-energy-temperature"]``), T = 0.1 in the text variant."""
    params = dict((extra or {}).get(post, {}))
    if post == "energy" and backbone == "swinv2_b" and variant == "text":
        params.setdefault("temperature", 0.1)
    return params


#: Swin-V2-B fine-tuning columns: printed label -> (postprocessor, params) per variant (``swin-ft-scores``).
SWIN_FT_SCORES = {
    "published": {"MSP Score": ("msp", {"temperature": 100.0}),
                  "Energy Score": ("glmcm_logits", {"temperature": 100.0})},
    "text": {"MSP Score": ("msp", {}), "Energy Score": ("energy", {"temperature": 0.1})},
}
#: LoRA options of the paper's LoRA rows per variant (``lora-alpha``): peft's default alpha 8 as the official
#: finetune.py ran, or the text's 16 (the lora method's default).
LORA_OPTIONS = {"published": {"alpha": 8.0}, "text": {}}


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
                runs = cond.runs(ids.benchmark, backbone, post, _params_for(post, cond.backbone or backbone, params))
                pcol = (paper_columns or {}).get(cond.label, cond.label) if cond.paper is not None else None
                for m in metrics:
                    cells.append(Cell((ids.label, label), cond.label, m, runs, "average",
                                      paper_row=f"{ids.label} / {label}" if pcol else None, paper_column=pcol,
                                      deviation=cond.on(ids.benchmark).deviation))
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


def paper_experiments(version: str = "neurips", variant: str = "published") -> list[Experiment]:
    """Every experiment of the paper version ``version`` (``neurips`` or ``arxiv``).

    ``variant``: ``"published"`` (default) follows the configuration behind the printed numbers wherever it differs
    from the paper's text (:data:`DEVIATIONS`); ``"text"`` follows the text there.
    """
    if version not in PAPER_VERSIONS:
        raise UserError(f"unknown paper version {version!r} — choose one of: {', '.join(PAPER_VERSIONS)}")
    check_variant(variant)
    arxiv = version == "arxiv"
    lora_opts = LORA_OPTIONS[variant]
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
    swin_scores = SWIN_FT_SCORES[variant]

    def score_of(bb_label: str, col: str) -> tuple[str, dict, str]:
        """(postprocessor, params, deviation) of a printed score column."""
        if bb_label == "Swin-base":
            post, params = swin_scores[col]
            return post, dict(params), "swin-ft-scores"
        return {"MCM Score": "mcm", "GL-MCM Score": "glmcm"}[col], {}, ""

    for bb_label, posts, methods in ft_blocks:
        bb = PAPER_BACKBONES[bb_label]
        for label, method, paper in methods:
            cond = Condition(label, method, lora_opts if method == "lora" else {}, seeds=SEEDS, paper=paper)
            for col in score_cols:
                printed = {"MCM Score": "mcm", "GL-MCM Score": "glmcm", "MSP Score": "msp",
                           "Energy Score": "energy"}[col]
                for m in METRICS:
                    if printed in posts:
                        post, params, dev = score_of(bb_label, col)
                        if method == "lora" and variant == "published":
                            dev = dev or "lora-alpha"
                        summary.append(Cell((bb_label, label), col, m, cond.runs("imagenet1k", bb, post, params),
                                            "average", paper_row=f"{bb_label} / {paper}", paper_column=col,
                                            deviation=dev))
                    else:
                        summary.append(Cell((bb_label, label), col, m, na=True))
        for printed in posts:
            col = {"mcm": "MCM Score", "glmcm": "GL-MCM Score", "msp": "MSP Score", "energy": "Energy Score"}[printed]
            post, params, dev = score_of(bb_label, col)
            for label, method, paper in methods:
                cond = Condition(label, method, lora_opts if method == "lora" else {}, seeds=SEEDS, paper=paper)
                cell_dev = dev or ("lora-alpha" if method == "lora" and variant == "published" else "")
                for cell in detail_cells([imagenet], (post,), [cond], bb, imagenet.ood_sets, params={post: params}):
                    detail.append(Cell((bb_label, col) + cell.row[2:], cell.column, cell.metric, cell.runs,
                                       cell.source, na=cell.na, paper_row=f"{bb_label} / {col} / {paper}",
                                       paper_column=cell.column, deviation=cell_dev))
    ft_notes = ("NPOS and CoOp (cited rows) are not oodbench methods; LoCoOp† is the cited number of the method "
                "whose re-run is LoCoOp∗ (ours is compared with ∗).",
                "Fine-tuning on the ID val split (1 image per class) with the presets of Table 11; seeds 3, 4, 5.",
                "Swin-base columns, labelled as the paper prints them: " + (
                    "'MSP Score' is MSP at temperature 100 (max softmax(logits / 100), the official mcm_score) and "
                    "'Energy Score' is GL-MCM over Swin's global and per-patch classifier logits at temperature 100 "
                    "(glmcm_logits, the official gl_mcm_score), as the published runs scored them."
                    if variant == "published" else "MSP at T = 1 and Energy at T = 0.1, as the paper's text says."),
                deviation_note("swin-ft-scores", variant), deviation_note("lora-alpha", variant))
    exps.append(Experiment("finetune", "Fine-tuning: LoCoOp, LoRA, SeTAR+FT on ImageNet-1K", (
        TableSpec(_key(s_paper, "finetune"), "Fine-tuning results on ImageNet-1K (averages)", ("Backbone", "Method"),
                  tuple(summary), s_paper, _conventions(True), ft_notes),
        TableSpec(_key(d_paper, "finetune_detail"), "Fine-tuning results on ImageNet-1K — per OOD set",
                  ("Backbone", "Score", "Method"), tuple(detail), d_paper, _conventions(True), ft_notes)),
        figures=(_loss_figure("fig6_loss_curves", "imagenet1k", "clip_vit_b16",
                              "SeTAR+FT vs LoRA training losses (CLIP-B/16, ImageNet-1K)", lora_opts),)))

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
    random_imagenet = ({"imagenet1k": ("setar", {"prune": "principal"}, (None,), "imagenet-random-prune")}
                       if variant == "published" else {})
    exps.append(_ablation(version, "prune", "Pruning strategies (principal, random, minor)", [
        Condition("Principle", "setar", {"prune": "principal"}, paper="Principle"),
        Condition("Random", "setar", {"prune": "random"}, seeds=SEEDS, paper="Random", by_benchmark=random_imagenet),
        Condition("Minor", "setar", {"prune": "minor"}, paper="Minor")], "Prune",
        ((6, 6), (18, 20)), notes=(
            ("Random: the random-prune seed is the run's seed (3, 4, 5); mean ± std. ImageNet-1K Random is principal "
             "pruning (the Principle run), as the published run: " if variant == "published" else
             "Random: true random pruning on both ID sets; the random-prune seed is the run's seed (3, 4, 5); "
             "mean ± std. ") + deviation_note("imagenet-random-prune", variant),)))

    # Table 7: classification accuracy
    exps.append(_accuracy_experiment(version, variant))

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
        dev = "swin-energy-temperature" if (bb == "swinv2_b" and post == "energy") else ""
        for col, method in (("Vanilla Method", "none"), ("SeTAR", "setar")):
            runs = (RunSpec.make(bench, bb, post, method, params=_params_for(post, bb, variant=variant)),)
            for m in METRICS:
                summary.append(Cell((id_label, bb_label, score_label(post)), col, m, runs, "average",
                                    paper_row=f"{id_label} / {bb_label} / {score_label(post)}", paper_column=col,
                                    deviation=dev))
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
            dev = "swin-energy-temperature" if (bb == "swinv2_b" and post == "energy") else ""
            for cond in (Condition(f"Vanilla {score}", paper=f"Vanilla {score}{mark}"),
                         Condition(f"SeTAR+{score}", "setar", paper=f"SeTAR+{score}")):
                for cell in detail_cells([ids_], (post,), [cond], bb, PAPER_OOD_ORDER,
                                         params={post: _params_for(post, bb, variant=variant)}):
                    detail.append(Cell((id_label, bb_label, cond.label), cell.column, cell.metric, cell.runs,
                                       cell.source, na=cell.na, paper_row=f"{id_label} / {paper_bb} / {cond.paper}",
                                       paper_column=cell.column, deviation=dev if not cell.na else ""))
    bb_notes = ("Swin-V2-B: SeTAR on the vision tower only; MSP at temperature 1; Energy at temperature "
                + ("1, as the official configs (the text says 0.1)." if variant == "published" else
                   "0.1, as the paper's text (the official configs use 1)."),
                "CLIP-L/14 uses the Table 10 presets (lambda 0.50 / 0.30, K 300 / 6).",
                deviation_note("swin-energy-temperature", variant))
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
        exps.append(_near_ood(version, variant))
    return exps


#: Table 7's columns -> the set whose official label list they classify (``classify:<set>`` of a run's record).
CLASSIFY_COLUMNS = {"IN1K": "ImageNet-1K test", "SUN": "SUN", "Places": "Places", "Texture": "Texture"}


def _accuracy_experiment(version: str, variant: str) -> Experiment:
    """Table 7. Published: the official test_classify protocol on the shipped label lists (``classify:<set>`` and
    ``classify:average`` of each run); text: standard zero-shot accuracy of the ID test split, OOD columns blocked."""
    acc = _num(version, 7, 7)
    cells = []
    locoop_blocked = ("LoCoOp's learned prompts belong to the benchmark's class names, and the official protocol "
                      "classifies with other names (its label lists); not computed")
    text_blocked = "the paper's text names no labels for the OOD sets (the published variant computes these columns)"
    for label, method, seeds, paper in (("Vanilla CLIP", "none", (None,), "Vanilla CLIP∗"),
                                        ("LoCoOp", "locoop", SEEDS, "LoCoOp∗"), ("LoRA", "lora", SEEDS, "LoRA∗"),
                                        ("SeTAR", "setar", (None,), "SeTAR"), ("SeTAR+FT", "setar-ft", SEEDS, "SeTAR+FT")):
        options = LORA_OPTIONS[variant] if method == "lora" else None
        runs = tuple(RunSpec.make("imagenet1k", "clip_vit_b16", "mcm", method, options, seed=s) for s in seeds)
        if variant == "published":
            blocked = locoop_blocked if method == "locoop" else ""
            runs = tuple(r.with_(blocked=blocked) for r in runs)
            for col, split in (*CLASSIFY_COLUMNS.items(), ("Average", "average")):
                cells.append(Cell((label,), col, "Accuracy", runs, f"classify:{split}", paper_row=paper,
                                  paper_column=col, deviation="table7-labels"))
            continue
        cells.append(Cell((label,), "IN1K", "Accuracy", runs, "id_accuracy", paper_row=paper, paper_column="IN1K",
                          deviation="table7-labels"))
        for col in ("SUN", "Places", "Texture", "Average"):
            cells.append(Cell((label,), col, "Accuracy", tuple(r.with_(blocked=text_blocked) for r in runs),
                              "id_accuracy", paper_row=paper, paper_column=col))
    if variant == "published":
        caption = ("Top-1 accuracy x100 with the official protocol (SeTAR's test_classify.py): each set's official "
                   "label list (shipped with oodbench; ImageNet-1K: WordNet first lemmas, 998 distinct names), "
                   "prompts 'a photo of a {name}' over the set's distinct names, argmax, accuracy over the list "
                   "(SUN: the 9,639 listed images). Average: mean of the four columns. Seeded rows: mean ± std over "
                   "seeds 3, 4, 5.")
    else:
        caption = ("Top-1 accuracy x100 of standard zero-shot classification with the benchmark's class names and "
                   "prompt (the ID test split only). Seeded rows: mean ± std over seeds 3, 4, 5.")
    return Experiment("accuracy", "Classification accuracy (ID ImageNet-1K)", (
        TableSpec(_key(acc, "accuracy"), "Image classification accuracy (ID ImageNet-1K, CLIP-B/16)", ("Method",),
                  tuple(cells), acc, caption, (deviation_note("table7-labels", variant),
                                               deviation_note("lora-alpha", variant))),))


def _loss_figure(key: str, benchmark: str, backbone: str, title: str,
                 lora_options: dict[str, Any] | None = None) -> FigureSpec:
    series = tuple(Series("loss", METHOD_LABELS[m], tuple(
        (float(s), (RunSpec.make(benchmark, backbone, "mcm", m, (lora_options or {}) if m == "lora" else None,
                                 seed=s),)) for s in SEEDS)) for m in ("setar-ft", "lora"))
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


def _near_ood(version: str, variant: str = "published") -> Experiment:
    cells = []
    for label, method, seeds, cat in (("Vanilla", "none", (None,), "Training-Free"),
                                      ("SeTAR", "setar", (None,), "Training-Free"),
                                      ("LoCoOp", "locoop", SEEDS, "Training-Free"),
                                      ("LoRA", "lora", SEEDS, "Finetuning"),
                                      ("SeTAR+FT", "setar-ft", SEEDS, "Finetuning")):
        options = LORA_OPTIONS[variant] if method == "lora" else None
        dev = "lora-alpha" if method == "lora" and variant == "published" else ""
        for post in ("mcm", "glmcm"):
            runs = tuple(RunSpec.make("ssb_hard", "clip_vit_b16", post, method, options, seed=s) for s in seeds)
            col = f"{score_label(post)} Score"
            for m in METRICS:
                cells.append(Cell((label,), col, m, runs, "ssb_hard", paper_row=f"{label} / {cat}", paper_column=col,
                                  deviation=dev))
    paper = _num(version, None, 10)
    return Experiment("near-ood", "Near-OOD: ImageNet-1K vs. SSB-Hard", (
        TableSpec(_key(paper, "near_ood"), "Near-OOD: ImageNet-1K (ID) vs. SSB-Hard (CLIP-B/16)", ("Method",),
                  tuple(cells), paper, "SSB-Hard is the only OOD set. " + _conventions(True),
                  ("The SeTAR plan and the fine-tuned models are those of ImageNet-1K (same ID val split and classes, "
                   "so the cached ones are reused); the fine-tuned rows are means over seeds 3, 4, 5.",
                   deviation_note("lora-alpha", variant))),))


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
def experiments(paper: str = "neurips", benchmark: str | None = None, variant: str = "published") -> list[Experiment]:
    """The experiments of ``paper`` (or of the digits edition when ``benchmark == "digits"``, which has no
    variants); ``variant``: see :func:`paper_experiments`."""
    check_variant(variant)
    if benchmark == "digits":
        return digits_experiments()
    return paper_experiments(paper, variant)


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
