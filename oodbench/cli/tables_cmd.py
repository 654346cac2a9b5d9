"""``oodbench tables``: every table and figure of a registered paper (``--paper NAME``; SeTAR's two versions, the
digits edition, NegLabel, plugins) from the results store, running the runs that are missing when their weights and
data are there."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from oodbench.cli.common import add_command, cache_root, parse_named, results_root
from oodbench.console import out
from oodbench.options import at_least

log = logging.getLogger("oodbench")

def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "tables", parents,
        help="every table and figure of a registered paper (default SeTAR, NeurIPS version) from stored runs; runs "
             "what is missing",
        description="Find the runs each table needs in the results store (benchmark, backbone, method and its "
                    "options, postprocessor and hyperparameters, seed), run the missing ones when their weights and "
                    "data are there, and write each table as Markdown, CSV and LaTeX in the paper's layout (plus "
                    "ours-vs-paper views and the figures). Cells without a stored run show as 'missing', never as "
                    "the paper's number. --benchmark digits: the digits edition (results/digits).",
    )
    p.add_argument("--table", default="all", metavar="ID|all",
                   help="an experiment (table1, finetune, modality, wp, searcher, prune, accuracy, backbones, datasets, "
                        "lambda, topk, weight-types; arxiv: resnet50, near-ood; digits: beyond — MCM, GL-MCM, NegLabel, "
                        "CSP, AdaNeg x vanilla/SeTAR) or a paper table number (default all)")
    p.add_argument("--paper", default="neurips", metavar="NAME",
                   help="a registered paper (`oodbench list papers`): neurips (= setar, default) or arxiv — SeTAR's "
                        "two versions (arxiv adds ResNet-50, near-OOD and NegLabel) —, digits (the digits edition), "
                        "neglabel (NegLabel's Table 1), or one of a --plugin file or an installed package")
    p.add_argument("--variant", default="published", choices=("published", "text"),
                   help="where the paper's text and the runs behind its printed numbers differ (README: 'Published "
                        "run vs paper text'): follow the published runs (default) or the text (written to "
                        "results/tables/<paper>-text by default)")
    p.add_argument("--benchmark", default=None, metavar="NAME",
                   help="digits: the digits edition; imagenet1k / voc / ssb_hard: run only that benchmark's missing "
                        "runs (tables are still written whole)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the benchmarks' images (default $OODBENCH_DATA_ROOT; see `oodbench data layout`)")
    p.add_argument("--pretrained", action="append", default=[], metavar="BACKBONE=TAG|PATH",
                   help="weights of a backbone (e.g. clip_vit_b16=/w/ViT-B-16.pt); default: the published tag "
                        "(repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would run, what is missing (weights / data) and the exact commands; run nothing, "
                        "write nothing")
    p.add_argument("--no-run", action="store_true", help="only render from the stored runs; run nothing")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default results/digits for the digits edition, else results/tables/<paper>)")
    p.add_argument("--on-bad", choices=("skip", "fail"), default="skip",
                   help="unreadable or missing image files: leave them out (default) or stop")
    p.add_argument("--workers", type=at_least(0), default=None, metavar="N", help="image-loading worker processes")
    p.set_defaults(handler=run)
    # exit status: 0, 1 when a run the tables need failed (reported; the tables are still written), 2 on bad input


def run(args) -> int:
    from rich.markup import escape

    from oodbench.cli.benchmark_args import data_root_from_args
    from oodbench.orchestration.sweep import execute, plan_runs
    from oodbench.paper import get_paper, select, with_pretrained
    from oodbench.registry import registry
    from oodbench.reporting.tables import RunIndex
    from oodbench.results import ResultsStore

    t0 = time.perf_counter()
    failed: list = []
    variant = args.variant
    # --benchmark NAME where a paper (an edition) is registered under that name: that paper (--benchmark digits)
    edition = args.benchmark is not None and args.benchmark in registry("papers")
    paper = get_paper(args.benchmark if edition else args.paper)
    if not edition:
        paper.check_variant(variant)
    exps = select(paper.experiments(variant), args.table)
    pretrained = parse_named(args.pretrained, "--pretrained", "TAG|PATH")
    if pretrained:
        exps = [with_pretrained(e, pretrained) for e in exps]
    if args.benchmark and not edition:
        from oodbench.benchmark import get_benchmark

        get_benchmark(args.benchmark)  # unknown names fail with the list
    out_dir = Path(args.out) if args.out else paper.out_dir(variant)
    store = ResultsStore(results_root(args))
    caches = cache_root(args)
    data_root = data_root_from_args(args)
    specs = [r for e in exps for r in e.runs()]
    if args.benchmark and not edition:
        specs = [r for r in specs if r.benchmark == args.benchmark]
    index = RunIndex.from_store(store)
    device = _device(args.device)
    plan = plan_runs(specs, index, data_root=data_root, on_bad=args.on_bad, device=device,
                     check_weights=not args.no_run,
                     cache_dir=None if args.dry_run else caches.root)
    if args.dry_run or args.no_run:
        report(plan, specs, index, data_root, dry=args.dry_run, exps=exps)
        if args.dry_run:
            return 0
    else:
        if plan.cannot:
            report(plan, specs, index, data_root, dry=False)
        if plan.to_run:
            _, failed = execute(plan, caches, store, device=device, quiet=args.quiet > 0, num_workers=args.workers,
                                on_bad=args.on_bad)
            index = RunIndex.from_store(store)
            for group, why in failed:
                out.print(f"[bold red]failed[/]: {escape(group.command())}: {escape(why)}", highlight=False,
                          soft_wrap=True)
    from oodbench.reporting.paper_tables import write_paper

    written = write_paper(exps, index, out_dir, paper, checkpoints=caches.checkpoints)
    _summary(exps, index, out_dir, len(written), time.perf_counter() - t0)
    return 1 if failed else 0


def _device(name: str) -> str:
    from oodbench.runtime import resolve_device

    return resolve_device(name)


def report(plan, specs, index, data_root, dry: bool, exps=()) -> None:
    """What is stored, what would run, what cannot run and why (with the commands and, where per-image scores of
    other code can stand in, the ``oodbench runs import`` commands), stored runs that still leave cells missing,
    what is blocked."""
    from rich.markup import escape

    from oodbench.results.importer import MARK, import_command
    from oodbench.reporting.tables import build_table

    stored = sum(1 for s in dict.fromkeys(specs) if not s.blocked and index.find(s) is not None)
    total = len([s for s in dict.fromkeys(specs) if not s.blocked])
    out.print(f"{stored} of {total} runs the tables need are stored; {len(plan.blocked)} cannot be produced by oodbench",
              highlight=False)
    lacking: dict[str, int] = {}
    for e in exps:
        for t in e.tables:
            for v in build_table(t, index).values:
                if v.status == "missing" and v.note:
                    lacking[v.note] = lacking.get(v.note, 0) + 1
    for note, n in lacking.items():
        out.print(f"[bold]stored, yet {n} cell(s) missing[/]: {escape(note)}", highlight=False, soft_wrap=True)
    root = str(data_root) if data_root else "DATA"

    def commands(groups) -> list[str]:
        return list(dict.fromkeys(g.command(root if g.first.benchmark != "digits" else None) for g in groups))

    if plan.to_run:
        cmds = commands(plan.to_run)
        out.print(f"[bold]{'would run' if dry else 'to run'}[/]: {len(plan.to_run)} group(s) of runs, "
                  f"{len(cmds)} command(s):")
        for cmd in cmds:
            out.print("  " + escape(cmd), highlight=False, soft_wrap=True)
    if plan.cannot:
        reasons: dict[str, list] = {}
        for g, why in plan.cannot:
            reasons.setdefault(why, []).append(g)
        for why, groups in reasons.items():
            cmds = commands(groups)
            out.print(f"[bold]cannot run[/] {len(groups)} group(s) of runs — {escape(why)}", highlight=False,
                      soft_wrap=True)
            out.print(f"  once the weights and data are there ({len(cmds)} command(s)):", highlight=False)
            for cmd in cmds:
                out.print("  " + escape(cmd), highlight=False, soft_wrap=True)
    groups = plan.to_run + [g for g, _ in plan.cannot]
    imports = list(dict.fromkeys(c for g in groups for s in g.specs if (c := import_command(s))))
    if imports:
        out.print(f"[bold]or import[/] per-image score files written by other code instead of running "
                  f"({len(imports)} command(s); the values are marked {MARK}; `oodbench runs import --help`):",
                  highlight=False)
        for cmd in imports:
            out.print("  " + escape(cmd), highlight=False, soft_wrap=True)
    if plan.blocked:
        why = sorted({s.blocked for s in plan.blocked})
        out.print(f"blocked ({len(plan.blocked)} run(s)): " + "; ".join(why), highlight=False)


def _summary(exps, index, out_dir: Path, n_files: int, seconds: float) -> None:
    from oodbench.reporting.tables import build_table

    ok = missing = blocked = 0
    for e in exps:
        for t in e.tables:
            for v in build_table(t, index).values:
                ok += v.status == "ok"
                missing += v.status == "missing"
                blocked += v.status == "blocked"
    out.print(f"{n_files} file(s) written under {out_dir}: {ok} cell(s) filled, {missing} missing, {blocked} blocked "
              f"({seconds:.1f} s)", highlight=False)
    if missing:
        log.info("`oodbench tables --dry-run` lists the runs the missing cells need")
