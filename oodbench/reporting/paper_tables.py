"""A paper's tables and figures written from stored runs: the files ``oodbench tables`` and :func:`oodbench.tables`
write (each table as Markdown, CSV, LaTeX and JSON, the "paper vs ours" views, the figures, an ``index.md``)."""

from __future__ import annotations

from pathlib import Path

from oodbench.atomic import write_text
from oodbench.paper import Paper
from oodbench.reporting.figures import draw
from oodbench.reporting.tables import build_table, weights_of, write_table


def write_paper(exps, index, out_dir: Path, paper: Paper, checkpoints: Path | None = None) -> list[Path]:
    """Write every table and figure of ``exps`` (experiments of ``paper``) into ``out_dir`` and an ``index.md``
    listing them; ``checkpoints``: the checkpoints cache the loss-curve figures read."""

    written: list[Path] = []
    compared = paper.published_data is not None
    lines = [f"# {paper.heading()}", "",
             f"Regenerate with `{paper.command()}`. "
             "Each table: `.md`, `.csv` (the paper's layout, values as printed), `.tex` (booktabs), `.json` (full "
             "precision, run ids)" + (", and `_vs_paper.md/.csv` (ours, the paper's, the difference)" if compared else "")
             + ". Figures: `figures/` (PNG, SVG and the data as CSV).", "",
             "| experiment | table / figure | cells | stored | missing | blocked |", "|:--|:--|--:|--:|--:|--:|"]
    for e in exps:
        for t in e.tables:
            result = build_table(t, index)
            written += write_table(result, out_dir, meta={"experiment": e.id, "weights": weights_of(result, index)})
            counts = {s: sum(v.status == s for v in result.values) for s in ("ok", "static", "missing", "blocked")}
            counts["ok"] += counts.pop("static")
            n = sum(v.status != "na" for v in result.values)
            lines.append(f"| {e.id} | [{t.key}]({t.key}.md) | {n} | {counts['ok']} | {counts['missing']} | "
                         f"{counts['blocked']} |")
        for f in e.figures:
            paths = draw(f, index, out_dir / "figures", checkpoints=checkpoints)
            written += paths
            shown = next((p for p in paths if p.suffix == ".png"), None)
            target = f"figures/{shown.name}" if shown else f"figures/{f.key}.csv"
            lines.append(f"| {e.id} | [{f.key}]({target}) | | | | |")
    write_text(out_dir / "index.md", "\n".join(lines) + "\n")
    written.append(out_dir / "index.md")
    return written
