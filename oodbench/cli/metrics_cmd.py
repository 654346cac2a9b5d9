"""``oodbench metrics``: OOD metrics from score files, without running any model.

Checks before any number is computed (a careful user's expectations):

* fewer than 2 scores in a file: an error (the metrics could only be 0, 50 or 100);
* single-column files whose columns are named differently (``mcm_score`` against ``energy_score``): an error
  unless ``--column`` names the column to read in every file — mixing two scores gives a meaningless number;
* fewer than 20 ID scores: a warning, since FPR95 is then read at the nearest reachable ID recall, not at 95%.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from oodbench.benchmark import check_set_name
from oodbench.cli.common import add_command, parse_named
from oodbench.console import out
from oodbench.errors import UserError
from oodbench.metrics import CONVENTIONS, evaluate, nearest_recall
from oodbench.reporting.render import metrics_table, write_rows
from oodbench.scorefiles import ORIENTATIONS, read_named_scores

log = logging.getLogger("oodbench")


def add_score_file_args(parser) -> None:
    """``--id FILE --ood NAME=FILE ... [--column COL] [--higher-is id|ood]`` (metrics and runs import)."""
    parser.add_argument("--id", required=True, metavar="FILE", help="scores of the ID test set")
    parser.add_argument("--ood", required=True, action="append", metavar="NAME=FILE",
                        help="an OOD set (repeatable)")
    parser.add_argument("--column", default=None, help="column (CSV header) or key (npz) to read in every file")
    parser.add_argument("--higher-is", choices=ORIENTATIONS, default="id",
                        help="what larger values in the files mean (default id; official SeTAR score CSVs: ood)")


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "metrics", parents,
        help="compute FPR95 / AUROC / AUPR from per-image score files (.npy, .npz, .csv)",
        description="Compute every OOD metric from per-image score files. Example (official SeTAR dumps are "
                    "negated, higher = OOD): oodbench metrics --id scores_ImageNet.csv --ood iNat=scores_iNat.csv "
                    "--column mcm_score --higher-is ood",
    )
    add_score_file_args(p)
    p.add_argument("--out", default=None, metavar="FILE.csv|FILE.json", help="also write the table")
    p.set_defaults(handler=run)


def run(args) -> int:
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--out {args.out}: use a .csv or .json file name")
    ood_files = parse_named(args.ood, "--ood")
    for name in ood_files:
        check_set_name(name, "--ood")
    id_scores, id_col = read_named_scores(args.id, args.column, args.higher_is)
    ood_read = {name: read_named_scores(path, args.column, args.higher_is) for name, path in ood_files.items()}
    ood_scores = {name: values for name, (values, _col) in ood_read.items()}
    columns = {args.id: id_col, **{ood_files[n]: col for n, (_v, col) in ood_read.items()}}
    named = {f: c for f, c in columns.items() if c is not None}
    if args.column is None and len(set(named.values())) > 1:
        listing = ", ".join(f"{Path(f).name}: '{c}'" for f, c in named.items())
        raise UserError(f"the score files name their column differently ({listing}), so they may hold different "
                        "scores; rename the columns to agree, or pass --column NAME to read that column in every file")
    if id_scores.size < 20 and id_scores.size >= 2:
        log.warning("only %d ID scores: FPR95 is read at %.1f%% ID recall, the nearest reachable to 95%%",
                    id_scores.size, 100 * nearest_recall(id_scores.size))
    rows = evaluate(id_scores, ood_scores)
    caption = (f"ID {Path(args.id).name}: {id_scores.size} scores; file orientation: higher = {args.higher_is}; "
               f"FPR95 = {CONVENTIONS['fpr95']}")
    out.print(metrics_table(rows, title="OOD metrics (x100)", caption=caption))
    if args.out:
        meta = {
            "id_file": str(args.id),
            "ood_files": ood_files,
            "column": args.column,
            "higher_is": args.higher_is,
            "counts": {"id": int(id_scores.size), "ood": {k: int(np.size(v)) for k, v in ood_scores.items()}},
            "conventions": CONVENTIONS,
        }
        write_rows(rows, args.out, meta)
    return 0
