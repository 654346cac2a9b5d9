"""``oodbench run``: extract (or reuse) features once, score with every requested postprocessor, store runs."""

from __future__ import annotations

import logging
import time

from oodbench.cli.benchmark_args import (add_benchmark_args, add_extraction_args, benchmark_from_args,
                                         extraction_kwargs)
from oodbench.cli.common import add_backbone_args, add_command, backbone_from_args, cache_dir, results_root
from oodbench.cli.search_args import add_search_args, search_overrides
from oodbench.console import out
from oodbench.errors import UserError

log = logging.getLogger("oodbench")

DEFAULT_POSTS = {"clip": ("mcm", "glmcm", "neglabel", "energy", "maxlogit"),
                 "classifier": ("msp", "energy", "maxlogit", "react", "dice", "ash_s", "knn")}


def add_parser(sub, parents) -> None:
    p = add_command(
        sub, "run", parents,
        help="evaluate a backbone (optionally SeTAR-modified) with OOD scores on a benchmark",
        description="Extract (or reuse cached) features once, compute every requested postprocessor, print one "
                    "table per postprocessor and store each as a run. With no arguments: the embedded digits "
                    "benchmark with its tiny CLIP and MCM, GL-MCM, NegLabel, Energy, MaxLogit.",
    )
    add_backbone_args(p)
    p.add_argument("--post", default=None, metavar="NAME[,NAME...]",
                   help="postprocessors (`oodbench list postprocessors`), comma-separated, or 'all' for every "
                        "compatible one (default: mcm,glmcm,neglabel,energy,maxlogit for CLIP; "
                        "msp,energy,maxlogit,react,dice,ash_s,knn for classifiers)")
    p.add_argument("--param", action="append", default=[], metavar="POST.NAME=VALUE",
                   help="set a postprocessor hyperparameter, e.g. --param energy.temperature=0.1 (repeatable)")
    p.add_argument("--method", default="none", choices=("none", "setar"),
                   help="setar: search (or load --plan) a low-rank plan and show SeTAR beside the vanilla model")
    p.add_argument("--plan", default=None, metavar="FILE", help="SeTAR plan JSON (skips the search)")
    p.add_argument("--aps", action="store_true",
                   help="tune each postprocessor's hyperparameters on ID-val + OOD-val features (best AUROC)")
    add_benchmark_args(p)
    add_extraction_args(p)
    add_search_args(p)
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


def run(args) -> int:
    from oodbench.features.cache import FeatureCache
    from oodbench.pipeline import RunSettings, run as run_pipeline
    from oodbench.results import ResultsStore
    from oodbench.results.render import comparison_table
    from oodbench.runtime import resolve_device, seed_everything, set_float32_mode

    if args.plan and args.method != "setar":
        raise UserError("--plan is used with --method setar")
    t0 = time.perf_counter()
    seed_everything(args.seed)
    device = resolve_device(args.device)
    set_float32_mode(False)  # features are extracted in true fp32 (or the chosen --precision)
    resolved = benchmark_from_args(args)
    backbone = backbone_from_args(args, resolved, device)
    posts = tuple(p.strip() for p in args.post.split(",") if p.strip()) if args.post else DEFAULT_POSTS[backbone.kind]
    settings = RunSettings(
        backbone=backbone.name, pretrained=args.pretrained, postprocessors=posts,
        methods=("none", "setar") if args.method == "setar" else ("none",), plan_file=args.plan, aps=args.aps,
        seed=args.seed, search=search_overrides(args), search_tf32=args.tf32, params=parse_params(args.param, posts),
        **extraction_kwargs(args),
    )
    cache = FeatureCache(cache_dir(args) / "features")
    results = run_pipeline(resolved, settings, cache, ResultsStore(results_root(args)), backbone=backbone)
    by_post: dict[str, dict] = {}
    for r in results:
        by_post.setdefault(r.postprocessor, {})[r.method] = r.record
    for post, records in by_post.items():
        out.print(comparison_table(post, records))
    log.info("%d run(s) stored under %s in %.1f s", len(results), results_root(args), time.perf_counter() - t0)
    return 0
