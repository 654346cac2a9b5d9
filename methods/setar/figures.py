"""SeTAR's figures of a plan: the rank-ratio map (paper Fig. 7), contributed to ``oodbench plot``, the run
figures and the paper tables' figures through :meth:`oodbench.method.Method.plan_figure`.

:func:`plan_grid` (the data) is separate from :func:`plot_plan` (the drawing) so that it can be checked against
references.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.errors import UserError
from oodbench.reporting import plots  # its drawing helpers, looked up at call time

from .plan import parse_entry

TOWERS = ("vision", "text")
WEIGHT_ORDER = ("W_q", "W_k", "W_v", "W_o", "W_up", "W_down", "W_p")


@dataclass(frozen=True)
class PlanGrid:
    """The rank-ratio map of a plan: ``ratios[row, col]`` (NaN where the plan has no entry)."""

    layers: list[str]  # row labels, bottom block first ("0", "1", ..., "proj")
    columns: list[tuple[str, str]]  # (tower, weight type)
    ratios: np.ndarray  # [len(layers), len(columns)]
    prune: str


def plan_grid(plan: Any) -> PlanGrid:
    """Parse a plan (a :mod:`oodbench.methods.setar.plan` JSON object, a run record's ``plan``, or the official
    ``[[tower, weight_type, layer, ratio], ...]`` list) into a layer x (tower, weight type) grid.

    Raises:
        UserError: not a plan, or a malformed entry.
    """
    if isinstance(plan, list):
        plan = {"entries": plan}
    if not isinstance(plan, dict) or not isinstance(plan.get("entries"), list):
        raise UserError("not a SeTAR plan: expected a JSON object with an 'entries' list")
    entries = [(e.tower, e.weight_type, e.layer, float(e.ratio))
               for e in (parse_entry(item, i, "plan") for i, item in enumerate(plan["entries"]))]
    if not entries:
        raise UserError("the plan has no entries: nothing to draw")
    layers_n = sorted({e[2] for e in entries if e[2] >= 0})
    rows = [str(n) for n in range(0, (layers_n[-1] + 1) if layers_n else 0)]
    if any(e[2] < 0 for e in entries):
        rows.append("proj")
    cols = sorted({(e[0], e[1]) for e in entries},
                  key=lambda c: (TOWERS.index(c[0]), WEIGHT_ORDER.index(c[1]) if c[1] in WEIGHT_ORDER else 99, c[1]))
    grid = np.full((len(rows), len(cols)), np.nan)
    for tower, wtype, layer, ratio in entries:
        r = rows.index("proj") if layer < 0 else layer
        grid[r, cols.index((tower, wtype))] = ratio
    return PlanGrid(rows, cols, grid, str(plan.get("prune", "minor")))


def plot_plan(plan_json: Any, out: str | Path, title: str = "") -> list[Path]:
    """The rank-ratio map of a SeTAR plan (paper Fig. 7): a heat map of layer x (tower, weight type) with each
    ratio written in its cell; blank cells are weights the plan leaves out. Ratios >= 1 are absolute ranks
    (written ``rN``, not coloured).

    Args:
        plan_json: the plan as data (dict or official list; ``oodbench plot --plan FILE`` reads the file).
        out: output path; ``.png`` / ``.svg`` suffixes are replaced, and both files are written.

    Returns:
        The written paths.
    """
    grid = plan_grid(plan_json)
    plt = plots._pyplot()
    stem = Path(out)
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    ratios = np.where(grid.ratios >= 1, np.nan, grid.ratios)
    vmax = max(0.05, float(np.nanmax(ratios)) if np.isfinite(ratios).any() else 0.05)
    fig, ax = plt.subplots(figsize=(1.4 + 1.25 * len(grid.columns), 1.2 + 0.36 * len(grid.layers)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#f0f0f0")
    im = ax.imshow(np.ma.masked_invalid(ratios), cmap=cmap, vmin=0, vmax=vmax, aspect="auto", origin="lower")
    for r in range(len(grid.layers)):
        for c in range(len(grid.columns)):
            v = grid.ratios[r, c]
            if np.isnan(v):
                continue
            text = f"r{int(v)}" if v >= 1 else f"{v:.2f}".rstrip("0").rstrip(".") if v else "0"
            light = v < 1 and v > 0.6 * vmax
            ax.text(c, r, text, ha="center", va="center", fontsize=7, color="black" if light or v >= 1 else "white")
    ax.set_xticks(range(len(grid.columns)), [f"{t}\n{w}" for t, w in grid.columns], fontsize=8)
    ax.set_yticks(range(len(grid.layers)), grid.layers, fontsize=7)
    ax.set_xlabel("tower / weight type")
    ax.set_ylabel("layer (block index; proj = W_p)")
    fig.colorbar(im, ax=ax, label="rank-reduction ratio (fraction of singular values removed)")
    ax.set_title((title + "\n" if title else "") + f"SeTAR plan: rank-reduction ratio per layer (prune: {grid.prune})",
                 fontsize=9)
    return plots._save(fig, stem)
