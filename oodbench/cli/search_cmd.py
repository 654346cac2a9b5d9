"""``oodbench search``: run a method's search (SeTAR: greedy, LoCoOp loss on the ID val split) and write the
plan and its logs. Offered for every registered method that produces a plan."""

from __future__ import annotations

import logging
from pathlib import Path

from oodbench.cli.benchmark_args import add_benchmark_args, benchmark_from_args
from oodbench.cli.common import (add_backbone_args, add_command, backbone_from_args, cache_root, check_early,
                                 check_out_folder, results_root)
from oodbench.cli.method_args import add_method_args, method_names
from oodbench.console import out
from oodbench.errors import UserError

log = logging.getLogger("oodbench")


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "search", parents,
        help="search a low-rank plan (SeTAR: greedy, LoCoOp loss on the ID val split)",
        description="Greedy search of per-layer rank-reduction ratios minimising the LoCoOp loss on the benchmark's "
                    "ID val split. Reads only the val images and the class names. Writes plan.json (use it with "
                    "`oodbench run --method setar --plan FILE`), search_steps.csv, search_candidates.csv and "
                    "search_log.json. Each finished step is kept in the cache (--cache-dir): an interrupted search "
                    "resumes after its last finished step when the same command is run again, whatever --out.",
    )
    planners = method_names(produces="plan")
    add_backbone_args(p)
    p.add_argument("--method", default=planners[0] if len(planners) == 1 else None, choices=planners or None,
                   help=f"the searching method ({', '.join(planners) or 'none registered'})")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default <results-root>/plans/<benchmark>-<backbone>-<plan hash>)")
    add_benchmark_args(p)
    add_method_args(p, only=planners, batch_flags=("--batch-size",))
    p.set_defaults(handler=run)


def run(args) -> int:
    """``oodbench search``; under ``torchrun`` the candidates of each step are divided over the processes and
    rank 0 alone writes the plan, the logs and the checkpoints (oodbench.distributed)."""
    from oodbench import distributed
    from oodbench.runtime import resolve_device

    if not args.method:
        raise UserError(f"--method is required: one of {', '.join(method_names(produces='plan'))}")
    check_early(args)
    from oodbench.method import method_class

    cls = method_class(args.method)
    cls(**cls.options_from_args(args))  # bad option values are refused here, before torch is imported
    check_out_folder(args.out)
    with distributed.session(resolve_device(args.device)) as (world, device):
        return _run(args, device, world)


def _run(args, device: str, world) -> int:
    from oodbench import distributed
    from oodbench.method import MethodContext, method_class
    from oodbench.runtime import seed_everything, set_float32_mode

    seed_everything(args.seed or 0)
    set_float32_mode(False)
    cls = method_class(args.method)
    method = cls(**cls.options_from_args(args))
    if method.options.get("plan_file"):
        raise UserError("--plan gives a plan; `oodbench search` searches one (drop --plan)")
    caches = cache_root(args)
    folder_root = results_root(args)
    resolved = benchmark_from_args(args, roles=("id_val",))
    backbone = backbone_from_args(args, resolved, device)
    ctx = MethodContext(backbone=backbone, benchmark=resolved, caches=caches, seed=args.seed or 0, device=device,
                        on_bad=args.on_bad, quiet=args.quiet > 0)
    method.check(ctx)
    result = method.search(ctx)
    from oodbench.results.store import id_part

    safe_name = id_part(backbone.name)  # bounded and path-safe, as in run ids (a long local-dir: path)
    folder = Path(args.out) if args.out else (
        folder_root / "plans" / f"{resolved.spec.name}-{safe_name}-{result.plan.hash()}")
    distributed.on_main(lambda: method.save_search(result, folder), phase="search")
    if not world.is_main:
        return 0
    for renderable in method.search_summary(result):
        out.print(renderable)
    out.print(f"written to {folder}")
    return 0
