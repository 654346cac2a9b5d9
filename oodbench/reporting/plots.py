"""Figures of stored runs: ROC curves and ID/OOD score histograms per run, and the figure a run's method draws of
its plan (:meth:`oodbench.method.Method.plan_figure`; SeTAR: the rank-ratio map).

Every figure is written as PNG and SVG (matplotlib, Agg backend, atomic writes). Scores are oriented
**higher = more in-distribution**; ROC curves take ID as the positive class, as the ``auroc`` and ``fpr95``
metrics do. The data functions (:func:`roc_data`, :func:`histogram_data`) are separate from
the drawing so that they can be checked against references.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from oodbench.atomic import write_bytes
from oodbench.errors import UserError
from oodbench.metrics import auroc, check_scores, fpr95, fpr95_threshold

CONVENTION = "score: higher = more in-distribution; ROC with ID as the positive class"
#: The metric conventions every run figure states in its caption (as the tables and the leaderboard do).
METRIC_CAPTION = ("AUROC: area under the ROC, ID positive, ties count half. FPR95: share of OOD images accepted "
                  "at the threshold that accepts 95% of ID images (nearest recall to 95%, the MCM/SeTAR official "
                  "code). Score: higher = more in-distribution.")
FORMATS = ("png", "svg")
# drawing resolution of a ROC curve: a point closer than this (in both FPR and TPR) to the last drawn one is skipped
_ROC_DRAW_STEP = 1.0 / 2000


# ------------------------------------------------------------------------------------------------ data
def roc_data(id_scores, ood_scores, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve with ID as the positive class: ``(fpr, tpr, thresholds)``.

    The same points as ``sklearn.metrics.roc_curve(is_id, scores, drop_intermediate=...)``: one point per
    distinct score (accept everything scored ``>= threshold``), led by ``(0, 0)`` at threshold ``+inf``; with
    ``drop_intermediate`` the points inside horizontal or vertical runs are left out.

    Args:
        id_scores: ``[N_id]`` scores of ID samples.
        ood_scores: ``[N_ood]`` scores of OOD samples.
    """
    id_arr, ood_arr = check_scores(id_scores, "ID"), check_scores(ood_scores, "OOD")
    scores = np.concatenate([id_arr, ood_arr])
    is_id = np.r_[np.ones(id_arr.size), np.zeros(ood_arr.size)]
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], is_id[order]
    last_of_value = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tps = np.cumsum(y)[last_of_value]
    fps = (last_of_value + 1) - tps
    thresholds = s[last_of_value]
    if drop_intermediate and tps.size > 2:
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tpr = np.r_[0.0, tps / id_arr.size]
    fpr = np.r_[0.0, fps / ood_arr.size]
    return fpr, tpr, np.r_[np.inf, thresholds]


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, step: float = _ROC_DRAW_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Points of a monotone curve for drawing: a point is kept when it is at least ``step`` away (in FPR or
    TPR) from the last kept one; the first and last points are always kept. Curves of a few thousand points
    are returned whole."""
    if fpr.size <= 4000:
        return fpr, tpr
    keep = [0]
    lf, lt = fpr[0], tpr[0]
    for i in range(1, fpr.size - 1):
        if fpr[i] - lf >= step or tpr[i] - lt >= step:
            keep.append(i)
            lf, lt = fpr[i], tpr[i]
    keep.append(fpr.size - 1)
    return fpr[keep], tpr[keep]


def histogram_data(scores: dict[str, np.ndarray], bins: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Shared bin edges over every score, and each set's density (``np.histogram(..., density=True)``).

    ``bins`` defaults to numpy's ``"auto"`` rule on the pooled scores, clamped to 10..100 bins.
    """
    pooled = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in scores.values()])
    if bins is None:
        n = len(np.histogram_bin_edges(pooled, bins="auto")) - 1
        bins = int(min(100, max(10, n)))
    edges = np.histogram_bin_edges(pooled, bins=bins)
    return edges, {k: np.histogram(v, bins=edges, density=True)[0] for k, v in scores.items()}


# ------------------------------------------------------------------------------------------- drawing
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem: Path) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomically) and close it."""
    plt = _pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            path = stem.with_suffix(f".{fmt}")
            write_bytes(path, lambda f, data=buf.getvalue(): f.write(data))
            written.append(path)
    finally:
        plt.close(fig)
    return written


def _split_scores(scores: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if "id" not in scores or not any(k.startswith("ood/") for k in scores):
        raise UserError("no per-image scores stored with this run (scores.npz with 'id' and 'ood/<set>'): "
                        "nothing to plot")
    return scores["id"], {k.removeprefix("ood/"): v for k, v in scores.items() if k.startswith("ood/")}


def plot_roc(scores: dict[str, np.ndarray], stem: Path, title: str = "") -> list[Path]:
    """One ROC curve per OOD set (AUROC in the legend) on one axes; writes ``<stem>.png/.svg``."""
    plt = _pyplot()
    id_scores, ood = _split_scores(scores)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    for name, s in ood.items():
        fpr, tpr, _ = roc_data(id_scores, s)
        fx, ty = thin_curve(fpr, tpr)
        ax.plot(100 * fx, 100 * ty, lw=1.6,
                label=f"{name} (AUROC {100 * auroc(id_scores, s):.2f}, FPR95 {100 * fpr95(id_scores, s):.2f})")
    ax.plot([0, 100], [0, 100], ls=":", color="grey", lw=1, label="chance")
    ax.axhline(95, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("OOD accepted (false positive rate, %)")
    ax.set_ylabel("ID accepted (true positive rate, %)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100.5)
    ax.legend(loc="lower right", fontsize=8, title="OOD set", title_fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title((title + "\n" if title else "") + "ROC, ID positive (dashed: 95% ID recall)", fontsize=9)
    _caption(fig, METRIC_CAPTION, width=95)
    return _save(fig, stem)


def _caption(fig, text: str, width: int = 110) -> None:
    """The metric conventions under the figure, wrapped to its width."""
    import textwrap

    fig.text(0.01, 0.0, "\n".join(textwrap.wrap(text, width)), fontsize=7, color="dimgrey", va="top")


def plot_histograms(scores: dict[str, np.ndarray], stem: Path, title: str = "") -> list[Path]:
    """ID vs OOD score densities, one panel per OOD set, the FPR95 threshold marked; ``<stem>.png/.svg``."""
    plt = _pyplot()
    id_scores, ood = _split_scores(scores)
    edges, dens = histogram_data({"id": id_scores, **{f"ood/{k}": v for k, v in ood.items()}})
    n = len(ood)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.3 * rows), squeeze=False, sharex=True)
    for ax, (name, s) in zip(axes.ravel(), ood.items()):
        ax.stairs(dens["id"], edges, fill=True, alpha=0.45, color="tab:blue", label=f"ID ({id_scores.size})")
        ax.stairs(dens[f"ood/{name}"], edges, fill=True, alpha=0.45, color="tab:red", label=f"{name} ({s.size})")
        thr = fpr95_threshold(id_scores, s)
        ax.axvline(thr, color="black", ls="--", lw=0.9, label="95% ID recall threshold")
        ax.set_title(f"ID vs {name}: FPR95 {100 * fpr95(id_scores, s):.2f}, AUROC {100 * auroc(id_scores, s):.2f}",
                     fontsize=9)
        ax.tick_params(labelbottom=True)  # every panel keeps its score ticks (shared axis, same bins)
        ax.set_xlabel("score (score units; higher = more in-distribution)", fontsize=8)
        ax.set_ylabel("density (per score unit)", fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle((title + "\n" if title else "") + "Score histograms (densities, shared bins)", fontsize=10)
    fig.tight_layout()
    _caption(fig, METRIC_CAPTION + " Dashed line: the FPR95 operating point (95% of ID scored above it).",
             width=int(55 * cols))
    return _save(fig, stem)


def plot_run(run, out_dir: str | Path | None = None) -> list[Path]:
    """ROC curves (``roc``), score histograms (``hist``) and, for a run whose method draws its plan, that figure
    (``plan``; SeTAR: the rank-ratio map) of a stored run (:class:`oodbench.results.runs.StoredRun`), as PNG and SVG in ``out_dir``
    (default ``<run folder>/figures``)."""
    rec = run.record
    out = Path(out_dir) if out_dir is not None else run.path / "figures"
    scores = run.scores()
    _split_scores(scores)
    title = run_title(rec)
    written = plot_roc(scores, out / "roc", title) + plot_histograms(scores, out / "hist", title)
    written += plan_figure(rec, out / "plan", title)
    return written


def plan_figure(rec, stem: Path, title: str) -> list[Path]:
    """The figure the run's method draws of the run's plan (:meth:`oodbench.method.Method.plan_figure`), if any;
    nothing for a method that is not registered here."""
    from oodbench.method import method_class

    try:
        cls = method_class(rec.method)
    except Exception:  # an imported run of a method of a plugin not loaded now
        return []
    return cls.plan_figure(rec.plan or {}, stem, title)


def run_title(rec) -> str:
    """``digits: digits_clip / SeTAR / GL-MCM`` — benchmark, backbone and the display names of the method and the
    score (as recorded, else as registered), the score's hyperparameters after them."""
    from oodbench.results.runs import method_title, params_text, post_title

    params = params_text(rec.postprocessor.get("params"))
    return (f"{rec.benchmark}: {rec.backbone.get('name', '?')} / {method_title(rec)} / {post_title(rec)}"
            + (f" ({params})" if params else ""))


def figure_paths(run_dir: Path) -> dict[str, Path]:
    """The figures ``oodbench plot`` left in a run folder (``roc``, ``hist``, ``plan``; PNG), where present."""
    return {k: p for k in ("roc", "hist", "plan") if (p := run_dir / "figures" / f"{k}.png").is_file()}
