"""The Python API: the same work as the CLI commands, returning objects instead of printing tables.

::

    import oodbench

    results = oodbench.run(post=["mcm", "glmcm"], method="setar")         # digits benchmark, digits_clip
    for r in results:
        print(r.method, r.postprocessor, r.record.metrics["average"]["auroc"])

    plan = oodbench.search(backbone="clip_vit_b16", benchmark="imagenet1k", data_root="/data").plan
    store = oodbench.store("runs")                                         # the results store
    store.runs(method="setar", postprocessor="glmcm")

Each function takes the CLI's options as keyword arguments (``--cache-dir`` -> ``cache_dir``, ...). Methods and
scores are registry names; a method's own options go in ``method_options={"setar": {"top_k": 2}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

DEFAULT_BENCHMARK = "digits"


def _resolved(benchmark, data_root, on_bad: str, roles=None):
    from oodbench.benchmark import BenchmarkSpec, ResolvedBenchmark, get_benchmark
    from oodbench.data.resolve import resolve

    if isinstance(benchmark, ResolvedBenchmark):
        return benchmark
    spec = benchmark if isinstance(benchmark, BenchmarkSpec) else get_benchmark(benchmark or DEFAULT_BENCHMARK)
    return resolve(spec, data_root if spec.needs_data_root else None, on_bad=on_bad, roles=roles)


def _backbone(backbone, pretrained, resolved, device: str):
    from oodbench.backbones import create_backbone
    from oodbench.backbones.base import Backbone
    from oodbench.errors import UserError

    if isinstance(backbone, Backbone):
        return backbone.to(device)
    name = backbone or resolved.spec.default_backbone
    if name is None:
        raise UserError(f"backbone is required for benchmark '{resolved.spec.name}' (see `oodbench list backbones`)")
    return create_backbone(name, pretrained).to(device)


def _names(x: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if x is None:
        return None
    return tuple(p.strip() for p in x.split(",") if p.strip()) if isinstance(x, str) else tuple(x)


def run(backbone=None, benchmark=None, *, pretrained: str | None = None, data_root: str | Path | None = None,
        post: str | Iterable[str] | None = None, method: str | Iterable[str] | None = None,
        method_options: dict[str, dict[str, Any]] | None = None, params: dict[str, dict[str, Any]] | None = None,
        aps: bool = False, precision: str = "fp32", batch_size: int = 128, num_workers: int | None = None,
        device: str = "auto", seed: int = 0, on_bad: str = "skip", cache_dir: str | Path | None = None,
        results_root: str | Path | None = None, save: bool = True, quiet: bool = False, decode: str = "pil"):
    """``oodbench run``: evaluate the vanilla model and each ``method`` with every score in ``post``.

    Args:
        backbone: registry name, ``open_clip:``/``timm:`` reference, or a Backbone (default: the benchmark's).
        benchmark: registry name, a BenchmarkSpec, or a ResolvedBenchmark (default: the embedded digits).
        post: postprocessor names (default: the benchmark's / the backbone kind's defaults), or ``"all"``.
        method: methods evaluated beside the vanilla model (``"setar"``).
        results_root: where runs are stored (default ``$OODBENCH_RESULTS_ROOT`` or ./runs).
        save: store the runs (False: only return them).
        decode: ``"pil"`` (official preprocessing) or ``"gpu"`` (:mod:`oodbench.data.decode`; recorded).

    Returns:
        One :class:`oodbench.orchestration.pipeline.PostResult` per (method, postprocessor), with ``record`` and ``scores``
        (under ``torchrun``: on rank 0; the other ranks get an empty list).
    """
    from oodbench.runtime import resolve_device

    from oodbench import distributed

    with distributed.session(resolve_device(device)) as (_, device):  # under torchrun: divided, rank 0 stores
        return _run(backbone, benchmark, pretrained, data_root, post, method, method_options, params, aps, precision,
                    batch_size, num_workers, device, seed, on_bad, cache_dir, results_root, save, quiet, decode=decode)


def _run(backbone, benchmark, pretrained, data_root, post, method, method_options, params, aps, precision, batch_size,
         num_workers, device, seed, on_bad, cache_dir, results_root, save, quiet, decode="pil"):
    from oodbench.cache import CacheRoot
    from oodbench.method import method_class
    from oodbench.orchestration.pipeline import RunSettings, run as run_pipeline
    from oodbench.registry import names
    from oodbench.results import ResultsStore
    from oodbench.runtime import default_results_root, seed_everything, set_float32_mode

    seed_everything(seed)
    set_float32_mode(False)
    resolved = _resolved(benchmark, data_root, on_bad)
    bb = _backbone(backbone, pretrained, resolved, device)
    chosen = [method_class(m).registry_name for m in (_names(method) or ())]
    baselines = [n for n in names("methods") if method_class(n).baseline]
    settings = RunSettings(
        backbone=bb.name, pretrained=pretrained, postprocessors=_names(post),
        methods=tuple(dict.fromkeys(baselines + chosen)), method_options=dict(method_options or {}), aps=aps,
        precision=precision, decode=decode, batch_size=batch_size, num_workers=num_workers, device=device,
        seed=seed,
        on_bad=on_bad, quiet=quiet, params=dict(params or {}))
    runs = ResultsStore(results_root or default_results_root()) if save else None
    return run_pipeline(resolved, settings, CacheRoot(cache_dir), runs, backbone=bb)


def search(backbone=None, benchmark=None, *, method: str | None = None, pretrained: str | None = None,
           data_root: str | Path | None = None, out: str | Path | None = None, device: str = "auto",
           seed: int | None = None, on_bad: str = "skip", cache_dir: str | Path | None = None, **options: Any):
    """``oodbench search``: search a plan on the ID val split (only that split and the class names are read).

    ``options`` are the method's own (``top_k``, ``lam``, ``ratios``, ``searcher`` ... for SeTAR). With ``out``
    the plan and logs are written there. Returns the method's search result (``.plan``, ``.log``).
    """
    from oodbench.errors import UserError
    from oodbench.method import method_class
    from oodbench.registry import names
    from oodbench.runtime import resolve_device

    planners = [n for n in names("methods") if method_class(n).produces == "plan"]
    if method is None:
        if len(planners) != 1:
            raise UserError(f"method is required: one of {', '.join(planners)}")
        method = planners[0]
    from oodbench import distributed

    with distributed.session(resolve_device(device)) as (_, device):  # under torchrun: divided, rank 0 writes
        return _search(backbone, benchmark, method, pretrained, data_root, out, device, seed, on_bad, cache_dir,
                       options)


def _search(backbone, benchmark, method, pretrained, data_root, out, device, seed, on_bad, cache_dir, options):
    from oodbench import distributed
    from oodbench.cache import CacheRoot
    from oodbench.method import MethodContext, method_class
    from oodbench.runtime import seed_everything, set_float32_mode

    seed_everything(seed or 0)
    set_float32_mode(False)
    resolved = _resolved(benchmark, data_root, on_bad, roles=("id_val",))
    bb = _backbone(backbone, pretrained, resolved, device)
    if seed is not None:
        options.setdefault("seed", seed)
    m = method_class(method)(**options)
    ctx = MethodContext(backbone=bb, benchmark=resolved, caches=CacheRoot(cache_dir), seed=seed or 0, device=device,
                        on_bad=on_bad)
    m.check(ctx)
    result = m.search(ctx)
    if out is not None:
        distributed.on_main(lambda: m.save_search(result, Path(out)), phase="search")
    return result


def store(root: str | Path | None = None):
    """The :class:`oodbench.results.ResultsStore` under ``root`` (default ``$OODBENCH_RESULTS_ROOT`` or ./runs):
    ``store.runs(method="setar")``, ``store.load(run_id)``, ``store.scores(run_id)``."""
    from oodbench.results import ResultsStore
    from oodbench.runtime import default_results_root

    return ResultsStore(root or default_results_root())


def tables(paper: str = "neurips", *, table: str = "all", variant: str = "published", out: str | Path | None = None,
           results_root: str | Path | None = None, checkpoints: str | Path | None = None) -> list[Path]:
    """Write the tables and figures of the registered paper ``paper`` (``oodbench list papers``) from the runs
    stored under ``results_root``, as ``oodbench tables --paper PAPER --no-run`` does; runs nothing. ``out``:
    default the paper's folder (``results/tables/<version>``). Returns the written paths."""
    from oodbench.paper import get_paper, select
    from oodbench.reporting.paper_tables import write_paper
    from oodbench.reporting.tables import RunIndex

    chosen = get_paper(paper)
    chosen.check_variant(variant)
    exps = select(chosen.experiments(variant), table)
    index = RunIndex.from_store(store(results_root))
    return write_paper(exps, index, Path(out) if out is not None else chosen.out_dir(variant), chosen,
                       checkpoints=Path(checkpoints) if checkpoints is not None else None)
