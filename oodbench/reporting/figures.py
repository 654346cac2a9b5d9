"""The paper's figures from stored runs: metric vs searched weight matrices per weight type (Figures 2-3),
lambda and top-K sensitivity (Figures 4-5), fine-tuning loss curves (Figure 6) and SeTAR rank-ratio maps
(Figure 7: the figure the run's method draws of its plan, :meth:`oodbench.method.Method.plan_figure`).

Every figure is written as PNG and SVG, with the data behind it as CSV beside it (``<key>.csv``). Metric values
are the average over the OOD sets, x100; FPR95 takes ID as the positive class at the recall nearest to 95% (the
SeTAR / MCM convention), and each figure says so in its caption. Points whose runs are not stored are left out
of the lines (and written as empty in the CSV), never filled from the paper.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from oodbench.atomic import write_text
from oodbench.reporting.escape import csv_writer
from oodbench.paper import FigureSpec
from oodbench.reporting.plots import _pyplot, _save, plan_figure
from oodbench.reporting.tables import RunIndex, run_value

FPR_CAPTION = ("Average over the OOD sets, x100. FPR95: fraction of OOD accepted at 95% ID recall (ID positive, "
               "nearest recall to 95%; lower is better). AUROC: higher is better.")


@dataclass
class Point:
    x: float
    mean: dict[str, float]  # paper metric label -> mean x100 (missing: absent)
    std: dict[str, float]
    n: int
    needed: int


@dataclass
class SeriesData:
    panel: str
    label: str
    points: list[Point]


def series_data(fig: FigureSpec, index: RunIndex, metrics=("AUROC", "FPR95")) -> list[SeriesData]:
    """Average-over-OOD-sets values of every point of every series (mean and std over a point's runs)."""
    out = []
    for s in fig.series:
        pts = []
        for x, runs in s.points:
            found = [index.find(r) for r in runs]
            have = [r for r in found if r is not None]
            mean, std = {}, {}
            if len(have) == len(runs) and have:
                for m in metrics:
                    vals = [run_value(r, "average", m) for r in have]
                    if all(v is not None for v in vals):
                        arr = 100.0 * np.asarray(vals, dtype=np.float64)
                        mean[m], std[m] = float(arr.mean()), float(arr.std())
            pts.append(Point(x, mean, std, len(have), len(runs)))
        out.append(SeriesData(s.panel, s.label, pts))
    return out


def data_csv(data: list[SeriesData], xlabel: str, metrics=("AUROC", "FPR95")) -> str:
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["panel", "series", xlabel] + [f"{m} mean" for m in metrics] + [f"{m} std" for m in metrics]
               + ["runs found", "runs needed"])
    for s in data:
        for p in s.points:
            x = int(p.x) if float(p.x).is_integer() else p.x
            w.writerow([s.panel, s.label, x] + [f"{p.mean[m]:.4f}" if m in p.mean else "" for m in metrics]
                       + [f"{p.std[m]:.4f}" if m in p.std else "" for m in metrics] + [p.n, p.needed])
    return buf.getvalue()


def _panels(data: list[SeriesData]) -> list[str]:
    return list(dict.fromkeys(s.panel for s in data))


def plot_metric_lines(fig: FigureSpec, data: list[SeriesData], stem: Path, metrics=("AUROC", "FPR95")) -> list[Path]:
    """One row of axes per panel, one column per metric; one line per series (error bars: std over seeds)."""
    plt = _pyplot()
    panels = _panels(data)
    f, axes = plt.subplots(len(panels), len(metrics), figsize=(5.2 * len(metrics), 3.4 * len(panels)), squeeze=False)
    drawn = 0
    for r, panel in enumerate(panels):
        for c, m in enumerate(metrics):
            ax = axes[r, c]
            for s in (s for s in data if s.panel == panel):
                pts = [p for p in s.points if m in p.mean]
                if not pts:
                    continue
                xs = [p.x for p in pts]
                ys = [p.mean[m] for p in pts]
                es = [p.std[m] if p.n > 1 else 0.0 for p in pts]
                style = dict(marker="o", ms=3.5, lw=1.4, label=s.label)
                if any(es):
                    ax.errorbar(xs, ys, yerr=es, capsize=2, **style)
                else:
                    ax.plot(xs, ys, **style)
                drawn += 1
            ax.set_xlabel(fig.xlabel)
            ax.set_ylabel(f"average {m} (%)" + (" ↓" if m == "FPR95" else " ↑"))
            ax.set_title(f"{panel}: {m}", fontsize=9)
            if fig.log_x:
                ax.set_xscale("symlog", linthresh=0.01)
            _grid_and_legend(ax)
    f.suptitle(fig.title, fontsize=10)
    f.tight_layout()
    f.text(0.01, -0.01, _wrap(FPR_CAPTION + " " + fig.caption), fontsize=7, color="dimgrey", va="top")
    return _save(f, stem)


def _wrap(text: str, width: int = 150) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ----------------------------------------------------------------------------------------------- loss curves
def loss_logs(fig: FigureSpec, index: RunIndex, checkpoints: Path) -> dict[str, list[list[dict[str, float]]]]:
    """``{series label: [per-run list of per-step rows]}`` from the fine-tuning runs' ``loss_log.csv`` (found in
    ``<cache>/checkpoints/<hash>/`` by the hash each run records)."""
    out: dict[str, list[list[dict[str, float]]]] = {}
    for s in fig.series:
        logs = []
        for _, runs in s.points:
            for spec in runs:
                rec = index.find(spec)
                if rec is None:
                    continue
                path = Path(checkpoints) / str(rec.plan.get("hash", "")) / "loss_log.csv"
                if path.is_file():
                    logs.append(read_loss_log(path))
        out[s.label] = logs
    return out


def read_loss_log(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


LOSS_TERMS = (("locoop_loss", "LoCoOp loss"), ("loss_id", "ID loss (cross-entropy)"),
              ("loss_ood", "OOD loss (−entropy of OOD patches)"))


def loss_csv(logs: dict[str, list[list[dict[str, float]]]]) -> str:
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["series", "run", "step", "epoch"] + [t for t, _ in LOSS_TERMS])
    for label, runs in logs.items():
        for i, rows in enumerate(runs):
            for row in rows:
                w.writerow([label, i, int(row.get("step", 0)), int(row.get("epoch", 0))]
                           + [f"{row[t]:.6f}" if t in row else "" for t, _ in LOSS_TERMS])
    return buf.getvalue()


def plot_loss_curves(fig: FigureSpec, logs: dict[str, list[list[dict[str, float]]]], stem: Path) -> list[Path]:
    """Three panels (LoCoOp, ID, OOD loss) vs training step; per series the mean over runs, band = min-max."""
    plt = _pyplot()
    f, axes = plt.subplots(1, len(LOSS_TERMS), figsize=(5.0 * len(LOSS_TERMS), 3.4), squeeze=False)
    for ax, (term, name) in zip(axes[0], LOSS_TERMS):
        for label, runs in logs.items():
            runs = [r for r in runs if r]
            if not runs:
                continue
            n = min(len(r) for r in runs)
            steps = np.array([r[i]["step"] for i in range(n) for r in runs[:1]]) + 1
            vals = np.array([[r[i].get(term, math.nan) for i in range(n)] for r in runs])
            ax.plot(steps, vals.mean(0), lw=1.4, label=f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
            if len(runs) > 1:
                ax.fill_between(steps, vals.min(0), vals.max(0), alpha=0.2)
        ax.set_xlabel("training step (batches)")
        ax.set_ylabel(f"{name} (nats)")
        ax.set_title(name, fontsize=9)
        _grid_and_legend(ax)
    f.suptitle(fig.title, fontsize=10)
    f.tight_layout()
    f.text(0.01, -0.02, _wrap(fig.caption + " The ID loss is the cross-entropy of the ID val images; the OOD loss "
                              "is minus the entropy of the patches outside the top-K (lower = more uncertain)."),
           fontsize=7, color="dimgrey", va="top")
    return _save(f, stem)


# ------------------------------------------------------------------------------------------------- dispatch
def draw(fig: FigureSpec, index: RunIndex, out_dir: str | Path, checkpoints: Path | None = None) -> list[Path]:
    """Draw ``fig`` into ``out_dir`` (``<key>.png/.svg`` and ``<key>.csv``; plan maps: one file per series)."""
    import matplotlib

    # SVG element ids are random unless salted: a fixed salt makes a redrawn figure byte-identical
    with matplotlib.rc_context({"svg.hashsalt": "oodbench"}):
        return _draw(fig, index, Path(out_dir), checkpoints)


def _draw(fig: FigureSpec, index: RunIndex, out: Path, checkpoints: Path | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fig.kind in ("sensitivity", "weight-types"):
        data = series_data(fig, index)
        write_text(out / f"{fig.key}.csv", data_csv(data, fig.xlabel))
        written += [out / f"{fig.key}.csv"] + plot_metric_lines(fig, data, out / fig.key)
    elif fig.kind == "loss-curves":
        logs = loss_logs(fig, index, checkpoints) if checkpoints is not None else {s.label: [] for s in fig.series}
        write_text(out / f"{fig.key}.csv", loss_csv(logs))
        written += [out / f"{fig.key}.csv"] + plot_loss_curves(fig, logs, out / fig.key)
    elif fig.kind == "plan-map":
        for s in fig.series:
            rec = next((index.find(r) for _, runs in s.points for r in runs if index.find(r) is not None), None)
            if rec is None:
                continue
            stem = out / f"{fig.key}_{_slug(s.label)}"
            written += plan_figure(rec, stem, f"{s.label} ({rec.benchmark}, {rec.backbone.get('name')})")
    else:
        raise ValueError(f"unknown figure kind {fig.kind!r}")
    return written


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower()


def _grid_and_legend(ax) -> None:
    """A light grid, and the legend — or "no stored runs" written across an empty panel."""
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no stored runs", ha="center", va="center", transform=ax.transAxes, color="grey")
