"""``oodbench leaderboard``: Markdown, CSV and a sortable static HTML page from the stored runs."""

from __future__ import annotations

from oodbench.cli.common import add_command, results_root
from oodbench.console import out


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "leaderboard", parents,
        help="build leaderboard.md / .csv / .html from the stored runs",
        description="One row per backbone x method x postprocessor x hyperparameters (the latest run of each, or "
                    "the best with --pick best), ranked by the average of --metric: averages over all, near and far "
                    "OOD sets, ID accuracy, AUPR-In/Out, the best value per column in bold, the method's settings "
                    "in words, imported runs marked, per-OOD-set values and links to each run's figures (`oodbench "
                    "plot RUN`); ad-hoc benchmarks get a table per ID data. The HTML page is one static file that "
                    "fits 1400 px (per-set columns unfold on demand, header and first columns stay in view); its "
                    "columns sort on click; leaderboard.html#sort=auroc opens it sorted.",
    )
    p.add_argument("--benchmark", default=None, help="only this benchmark (default: every benchmark, a table each)")
    p.add_argument("--metric", choices=("fpr95", "auroc"), default="fpr95", help="ranking metric (default fpr95)")
    p.add_argument("--pick", choices=("latest", "best"), default="latest",
                   help="which run of a row's group to show (default latest by stored time)")
    p.add_argument("--out", default="results", metavar="DIR", help="output folder (default ./results)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from oodbench.results import ResultsStore
    from oodbench.reporting.leaderboard import build, write

    board = build(ResultsStore(results_root(args)), benchmark=args.benchmark, metric=args.metric, pick=args.pick)
    paths = write(board, args.out, metric=args.metric, pick=args.pick)
    n = sum(len(rows) for rows in board.values())
    out.print(f"{n} row(s) over {len(board)} benchmark(s): " + ", ".join(str(p) for p in paths),
              highlight=False, soft_wrap=True)
    return 0
