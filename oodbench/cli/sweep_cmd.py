"""``oodbench sweep``: a grid of method options / postprocessor hyperparameters and seeds, one stored run per
point, aggregated as mean ± std over the seeds."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from oodbench.cli.benchmark_args import add_benchmark_args, add_extraction_args, benchmark_from_args
from oodbench.cli.common import (add_backbone_args, add_command, backbone_from_args, cache_root, check_early,
                                 results_root)
from oodbench.cli.method_args import add_method_args, method_names
from oodbench.console import out, print_table
from oodbench.errors import UserError

log = logging.getLogger("oodbench")


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "sweep", parents,
        help="run a grid of method options / score hyperparameters and seeds; one stored run per point; mean ± std",
        description="Every combination of the --grid axes, each with every --seeds seed, through the same pipeline "
                    "as `oodbench run` (all `run` options apply): features, SeTAR searches and fine-tuned models are "
                    "cached and reused across points, the vanilla model is evaluated once per (score "
                    "hyperparameters, seed). Prints one line per (point, method, score): the average over the OOD "
                    "sets as mean ± population std over the seeds. "
                    "Example: oodbench sweep --grid setar.lam=0.05,0.1,0.5 --grid setar.top_k=1,2 --seeds 3,4,5",
    )
    p.add_argument("--grid", action="append", default=[], metavar="OWNER.NAME=V1,V2,...",
                   help="an axis: a method option (setar.lam=0.05,0.1; setar.prune=minor,random) or a postprocessor "
                        "hyperparameter (energy.temperature=0.1,1); repeatable, the product is run")
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="seeds of every point (default: --seed, else 0); SeTAR's random prune and fine-tuning draw "
                        "with it")
    p.add_argument("--no-baseline", action="store_true", help="do not evaluate the vanilla model")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the aggregate: .csv (long: every OOD set and metric) or .md (averages)")
    add_backbone_args(p)
    p.add_argument("--post", default=None, metavar="NAME[,NAME...]",
                   help="postprocessors (default: the benchmark's, else each score's default for the backbone kind)")
    p.add_argument("--param", action="append", default=[], metavar="POST.NAME=VALUE",
                   help="a fixed postprocessor hyperparameter (repeatable)")
    p.add_argument("--method", default=None, metavar="NAME[,NAME...]",
                   help=f"methods evaluated ({', '.join(method_names())}); methods named by --grid are added")
    p.add_argument("--aps", action="store_true", help="tune each postprocessor's hyperparameters (APS) per point")
    add_benchmark_args(p)
    add_extraction_args(p)
    add_method_args(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from oodbench.cli.run_cmd import settings_from_args
    from oodbench.results import ResultsStore
    from oodbench.orchestration.sweep import expand_grid, parse_grid, parse_seeds, run_grid
    from oodbench.reporting.aggregate import aggregate, aggregate_csv, aggregate_markdown
    from oodbench.runtime import resolve_device, seed_everything, set_float32_mode

    t0 = time.perf_counter()
    axes = parse_grid(args.grid)
    seeds = parse_seeds(args.seeds) or ((args.seed,) if args.seed is not None else (0,))
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".md"):
        raise UserError(f"--out {args.out}: use a .csv or .md file name")
    grid_methods = [a.owner for a in axes if a.kind == "method"]
    if grid_methods:
        given = [m.strip() for m in (args.method or "").split(",") if m.strip()]
        args.method = ",".join(dict.fromkeys(given + grid_methods))
    grid_posts = [a.owner for a in axes if a.kind == "post"]
    if grid_posts and args.post and args.post != "all":
        posts = [p.strip() for p in args.post.split(",") if p.strip()]
        missing = [p for p in grid_posts if p not in posts]
        if missing:
            raise UserError(f"--grid names {', '.join(missing)}, which --post does not run; add it to --post")
    check_early(args)
    from oodbench.cli.method_args import check_unused_options, method_options, parse_methods

    methods = parse_methods(args.method)
    method_options(methods, args)
    check_unused_options(args, methods)
    seed_everything(seeds[0])
    device = resolve_device(args.device)
    set_float32_mode(False)
    caches, store = cache_root(args), ResultsStore(results_root(args))
    resolved = benchmark_from_args(args)
    backbone = backbone_from_args(args, resolved, device)
    settings = settings_from_args(args, resolved, backbone)
    points = expand_grid(axes)
    log.info("sweep: %d point(s) x %d seed(s)", len(points), len(seeds))
    results = run_grid(resolved, settings, points, seeds, caches, store, backbone, baseline=not args.no_baseline)
    rows = aggregate(results)
    print_aggregate(rows)
    if args.out:
        from oodbench.atomic import write_text

        path = Path(args.out)
        write_text(path, aggregate_csv(rows) if path.suffix.lower() == ".csv" else aggregate_markdown(rows))
        out.print(f"aggregate written to {path}", highlight=False)
    log.info("%d run(s) stored under %s in %.1f s", len(results), results_root(args), time.perf_counter() - t0)
    return 0


def print_aggregate(rows, console=None) -> None:
    """The sweep's table: labels wrap (a point's axes one per line when narrow), numbers stay whole; a table wider
    than the terminal (80 columns when piped) is split into parts that repeat the point, method and score."""
    from oodbench.reporting.aggregate import aggregate_table

    print_table(aggregate_table(rows), keep=3, console=console)
