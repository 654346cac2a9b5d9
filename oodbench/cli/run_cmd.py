"""``oodbench run``: extract (or reuse) features once, score with every requested postprocessor, store runs."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from oodbench.cli.benchmark_args import (add_benchmark_args, add_extraction_args, benchmark_from_args,
                                         extraction_kwargs)
from oodbench.cli.common import (add_backbone_args, add_command, backbone_from_args, cache_root, check_early,
                                 results_root)
from oodbench.cli.method_args import (add_method_args, check_unused_options, method_names, method_options,
                                      parse_methods)
from oodbench.console import out, print_table
from oodbench.errors import UserError

log = logging.getLogger("oodbench")


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "run", parents,
        help="evaluate a backbone (optionally with a method such as SeTAR) with OOD scores on a benchmark",
        description="Extract (or reuse cached) features once, compute every requested postprocessor, print one "
                    "table per postprocessor and store each as a run. With --method, the method's model is "
                    "evaluated beside the vanilla one. With no arguments: the embedded digits benchmark with its "
                    "tiny CLIP and its default scores.",
    )
    add_backbone_args(p)
    p.add_argument("--post", default=None, metavar="NAME[,NAME...]",
                   help="postprocessors (`oodbench list postprocessors`), comma-separated, or 'all' for every "
                        "compatible one (default: the benchmark's, else each score's default for the backbone kind)")
    p.add_argument("--param", action="append", default=[], metavar="POST.NAME=VALUE",
                   help="set a postprocessor hyperparameter, e.g. --param energy.temperature=0.1 (repeatable)")
    p.add_argument("--method", default=None, metavar="NAME[,NAME...]",
                   help=f"methods evaluated beside the vanilla model ({', '.join(method_names())}; "
                        "`oodbench list methods`)")
    p.add_argument("--seeds", default=None, metavar="N[,N...]",
                   help="run once per seed (e.g. 3,4,5: the paper's fine-tuning and random-prune protocol) and show "
                        "mean ± std over the seeds; every seed is stored as its own run")
    p.add_argument("--aps", action="store_true",
                   help="tune each postprocessor's hyperparameters on ID-val + OOD-val features (best AUROC)")
    add_benchmark_args(p)
    add_extraction_args(p)
    add_method_args(p)
    p.set_defaults(handler=run)


def parse_params(items: list[str], posts: tuple[str, ...]) -> dict[str, dict]:
    """``["energy.temperature=0.1"]`` -> ``{"energy": {"temperature": 0.1}}`` (values parsed as Python literals;
    postprocessor names resolved through the registry, aliases included)."""
    import ast

    from oodbench.registry import get

    run_names = {get("postprocessors", p).registry_name for p in posts if p != "all"}
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        post, dot, name = key.partition(".")
        if not sep or not dot or not post or not name:
            raise UserError(f"--param expects POST.NAME=VALUE (e.g. energy.temperature=0.1), got '{item}'")
        post = get("postprocessors", post).registry_name
        if posts != ("all",) and post not in run_names:
            raise UserError(f"--param {item}: '{post}' is not among the postprocessors run ({', '.join(posts)})")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(post, {})[name] = parsed
    return out


def settings_from_args(args, resolved, backbone):
    """:class:`~oodbench.orchestration.pipeline.RunSettings` from the parsed command line (validated, nothing run yet)."""
    from oodbench.orchestration.pipeline import RunSettings, default_postprocessors

    posts = tuple(p.strip() for p in args.post.split(",") if p.strip()) if args.post else None
    methods = parse_methods(args.method)
    options = method_options(methods, args)
    check_unused_options(args, methods)
    return RunSettings(
        backbone=backbone.name, pretrained=args.pretrained, postprocessors=posts, methods=methods,
        method_options=options, aps=args.aps, seed=args.seed if args.seed is not None else 0,
        params=parse_params(args.param, posts or default_postprocessors(resolved, backbone)), quiet=args.quiet > 0, **extraction_kwargs(args),
    )


def run(args) -> int:
    """``oodbench run``; under ``torchrun`` every process runs this, the work is divided (oodbench.distributed)
    and rank 0 alone writes the cache and the runs and prints the tables."""
    from oodbench import distributed
    from oodbench.runtime import resolve_device

    check_run_args(args)
    with distributed.session(resolve_device(args.device)) as (world, device):
        return _run(args, device, world)


def check_run_args(args) -> None:
    """What ``run`` (and ``sweep``) can refuse before importing a model library: :func:`check_early`, the
    methods and their options (``--method``, an option of a method not run), ``--param`` and ``--seeds``."""
    check_early(args)
    methods = parse_methods(args.method)
    method_options(methods, args)
    check_unused_options(args, methods)
    for item in args.param:
        key, sep, _ = item.partition("=")
        post, dot, name = key.partition(".")
        if not sep or not dot or not post or not name:
            raise UserError(f"--param expects POST.NAME=VALUE (e.g. energy.temperature=0.1), got '{item}'")
    if getattr(args, "seeds", None):
        parse_seeds(args.seeds)
        if args.seed is not None:
            raise UserError("give either --seed or --seeds")


def _run(args, device: str, world) -> int:
    from oodbench.orchestration.pipeline import run as run_pipeline
    from oodbench.results import ResultsStore
    from oodbench.runtime import seed_everything, set_float32_mode

    t0 = time.perf_counter()
    seed_everything(args.seed or 0)
    set_float32_mode(False)  # features are extracted in true fp32 (or the chosen --precision)
    caches, store = cache_root(args), ResultsStore(results_root(args))
    resolved = benchmark_from_args(args)
    backbone = backbone_from_args(args, resolved, device)
    settings = replace(settings_from_args(args, resolved, backbone), device=device)  # this rank's device
    if args.seeds:
        return _run_seeds(args, resolved, settings, caches, store, backbone, t0)
    results = run_pipeline(resolved, settings, caches, store, backbone=backbone)
    if not world.is_main:
        return 0
    print_results(results)
    print_note(resolved.spec)
    log.info("%d run(s) stored under %s in %.1f s", len(results), results_root(args), time.perf_counter() - t0)
    return 0


def print_results(results, console=None) -> None:
    """One table per postprocessor, each method's columns beside vanilla's (display names). A table wider than the
    terminal (or than 80 columns when the output is piped) is split into parts that repeat the OOD-set column and
    keep each method's columns together, so that no number is cut."""
    from oodbench.reporting.render import comparison_table

    by_post: dict[str, dict] = {}
    for r in results:
        by_post.setdefault(r.postprocessor, {})[r.record.plan.get("display_name", r.method)] = r.record
    for records in by_post.values():
        first = next(iter(records.values()))
        table = comparison_table(first.postprocessor.get("display_name", first.postprocessor["name"]), records)
        print_table(table, keep=2, group=len(table.columns[2:]) // len(records), console=console)


def print_note(spec, console=None) -> None:
    """The benchmark's declared note (what its results can and cannot show), as one line under the tables."""
    if spec.note:
        (console or out).print(f"note: {spec.note}", highlight=False, markup=False, soft_wrap=True)


def parse_seeds(text: str) -> list[int]:
    """``"3,4,5"`` -> ``[3, 4, 5]`` (distinct integers, in order)."""
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got '{text}'") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds expects distinct integers, got '{text}'")
    return seeds


def _run_seeds(args, resolved, settings, caches, store, backbone, t0) -> int:
    from oodbench.orchestration.sweep import run_seeds
    from oodbench.reporting.aggregate import aggregate, aggregate_table

    if args.seed is not None:
        raise UserError("give either --seed or --seeds")
    seeds = parse_seeds(args.seeds)
    results = run_seeds(resolved, settings, seeds, caches, store, backbone)
    from oodbench import distributed

    if not distributed.is_main():
        return 0
    print_table(aggregate_table(aggregate(results), title=f"mean ± std over seeds {', '.join(map(str, seeds))} "
                                                          "(average over OOD sets, x100)"), keep=3)
    print_note(resolved.spec)
    log.info("%d run(s) stored under %s in %.1f s", len(results), results_root(args), time.perf_counter() - t0)
    return 0
