"""``oodbench search``: a SeTAR search on a benchmark's ID val split; writes the plan and the search logs."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.table import Table

from oodbench.cli.benchmark_args import add_benchmark_args, benchmark_from_args
from oodbench.cli.common import add_backbone_args, add_command, backbone_from_args, results_root
from oodbench.cli.search_args import add_search_args, search_overrides
from oodbench.console import out

log = logging.getLogger("oodbench")


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "search", parents,
        help="search a SeTAR low-rank plan (greedy, LoCoOp loss on the ID val split)",
        description="Greedy search of per-layer rank-reduction ratios minimising the LoCoOp loss on the benchmark's "
                    "ID val split. Writes plan.json (use it with `oodbench run --method setar --plan FILE`), "
                    "search_steps.csv, search_candidates.csv and search_log.json.",
    )
    add_backbone_args(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default <results-root>/plans/<benchmark>-<backbone>-<plan hash>)")
    add_benchmark_args(p)
    add_search_args(p, batch_flags=("--batch-size",))
    p.set_defaults(handler=run)


def run(args) -> int:
    from oodbench.runtime import resolve_device, seed_everything, set_float32_mode
    from oodbench.setar_plans import run_search, save_search, search_config

    seed_everything(args.seed)
    device = resolve_device(args.device)
    set_float32_mode(False)
    resolved = benchmark_from_args(args)
    backbone = backbone_from_args(args, resolved, device)
    config, preset = search_config(backbone, resolved, search_overrides(args))
    result = run_search(backbone, resolved, config, preset, tf32=args.tf32)
    safe_name = backbone.name.replace("/", "_").replace(":", "_")
    folder = Path(args.out) if args.out else (
        results_root(args) / "plans" / f"{resolved.spec.name}-{safe_name}-{result.plan.hash()}")
    save_search(result, folder)
    out.print(steps_table(result))
    out.print(f"plan {result.plan.hash()}: {result.plan.describe()}")
    out.print(f"written to {folder} (plan.json, search_steps.csv, search_candidates.csv, search_log.json); "
              f"{len(result.log.candidates)} candidates in {result.log.seconds:.1f} s")
    return 0


def steps_table(result) -> Table:
    """The official per-step columns: the accepted ratio and the running best after each step."""
    s = result.log.settings
    table = Table(title=f"SeTAR search ({s.get('searcher')}, {s.get('weight_type')}, lambda {s.get('lambda')}, "
                        f"K {s.get('top_k')}, batch {s.get('batch_size')})", title_justify="left")
    for col in ("step", "tower", "weight", "layer", "best ratio", "loss*", "loss_id", "loss_ood", "acc",
                "ood patches %"):
        table.add_column(col, justify="right")
    for r in result.log.steps:
        table.add_row(str(r.step), r.tower, r.weight_type, str(r.layer), f"{r.best_ratio:.2f}", f"{r.locoop_loss:.4f}",
                      f"{r.loss_id:.4f}", f"{r.loss_ood:.4f}", f"{r.acc:.2f}", f"{r.ood_patch_percent:.1f}")
    return table
