"""``oodbench plot``: figures of a stored run (ROC curves, score histograms, plan map) or of a plan file."""

from __future__ import annotations

from pathlib import Path

from oodbench.cli.common import add_command, results_root
from oodbench.console import out
from oodbench.errors import UserError


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "plot", parents,
        help="ROC curves and ID/OOD score histograms of a run (PNG + SVG); the rank-ratio map of a SeTAR plan",
        description="Draw a stored run's ROC curves (one per OOD set, AUROC in the legend) and ID/OOD score "
                    "histograms, plus the rank-ratio map of its SeTAR plan when it has one, as PNG and SVG into "
                    "<run folder>/figures (or --out). With --plan FILE instead of RUN: only the plan's map.",
    )
    p.add_argument("run", nargs="?", metavar="RUN", help="run id, a unique prefix of one, or a run folder")
    p.add_argument("--plan", default=None, metavar="FILE", help="draw the rank-ratio map of this plan JSON")
    p.add_argument("--method", default="setar", metavar="NAME",
                   help="with --plan: the registered method whose plan it is (it draws the figure; default setar)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: the run's figures/ folder; with --plan: the current folder)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from oodbench.reporting.plots import plot_run

    if (args.run is None) == (args.plan is None):
        raise UserError("give either a RUN or --plan FILE")
    if args.plan:
        from oodbench.method import method_class

        stem = Path(args.out or ".") / (Path(args.plan).stem + "_ratios")
        written = method_class(args.method).plan_figure(_read_plan_file(Path(args.plan)), stem)
        if not written:
            raise UserError(f"method {args.method} draws no figure of the plan in {args.plan}")
    else:
        from oodbench.results import ResultsStore
        from oodbench.results.runs import find_run

        written = plot_run(find_run(ResultsStore(results_root(args)), args.run), args.out)
    for path in written:
        out.print(str(path), highlight=False, soft_wrap=True)
    return 0


def _read_plan_file(path: Path):
    import json

    if not path.is_file():
        raise UserError(f"plan file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"plan file {path} is not readable JSON ({exc})") from None
