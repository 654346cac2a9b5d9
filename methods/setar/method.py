"""SeTAR as a registered method: a low-rank plan (from ``--plan FILE`` or a cached greedy search on the ID val
split) applied by :class:`~oodbench.methods.setar.modifier.SetarModifier` before extraction.

A search result is cached under ``<cache-dir>/plans/<key>/`` (plan, per-step and per-candidate logs), keyed by
everything that determines it: backbone weights, preprocessing, the val images, class names, prompt and the
search settings. A second run with the same ingredients reuses the plan without searching again. While a search
runs, each finished step is saved to ``<cache-dir>/plans/<key>.partial/``: a search that was interrupted
(killed, pre-empted) resumes after its last finished step when the same command is run again, with the same
result as an uninterrupted one; ``oodbench search`` resumes the same way, whatever its ``--out``.

This module imports no model library at import time (the registry imports it for ``--help``).

Search settings: the published preset of (``Backbone.family``, ``BenchmarkSpec.family``) from
:mod:`~oodbench.methods.setar.presets`, overridden by what the user passes. The random prune strategy draws
with the run's ``--seed`` when one is given (the paper's Table 6 uses seeds 3, 4, 5), else with the preset's 5.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench import atomic, distributed
from oodbench.errors import DataError, UserError
from oodbench.hashing import hash_json
from oodbench.method import Method, MethodContext, Modification
from oodbench.options import at_least
from oodbench.registry import register

from .config import MODALITIES, PRUNE_STRATEGIES, SEARCHERS, SearchConfig
from .presets import search_preset

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .modifier import SetarModifier
    from .plan import Plan
    from .search import SearchResult

log = logging.getLogger("oodbench")

#: Search options a user may set (SearchConfig fields), and the method's other options.
SEARCH_OPTIONS = ("searcher", "weight_type", "modality", "lam", "top_k", "batch_size", "prune", "ratios",
                  "include_projection", "seed")
PLAN_CACHE_VERSION = 2  # 2: the SVDs of a search are computed with one CPU thread (oodbench.threads)


@register("methods", "setar")
class SetarMethod(Method):
    """SeTAR: low-rank approximation of weights chosen by a greedy search on the ID val split (or --plan FILE)."""

    display_name = "SeTAR"
    reads_val = True
    produces = "plan"
    option_names = (*SEARCH_OPTIONS, "plan_file", "tf32")
    run_flags = {"searcher": "--searcher", "weight_type": "--weight-type", "modality": "--modality", "lam": "--lambda",
                 "top_k": "--topk", "prune": "--prune", "include_projection": "--include-projection",
                 "ratios": "--ratios", "batch_size": "--search-batch-size"}

    @classmethod
    def options_for_seed(cls, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """The random prune order follows the run's seed (minor / principal searches do not use it)."""
        return {**options, "seed": seed} if options.get("prune") == "random" else dict(options)

    @classmethod
    def plan_seed(cls, options: dict[str, Any], seed: int | None) -> int | None:
        return seed if options.get("prune") == "random" else None

    @classmethod
    def plan_figure(cls, plan: Any, stem: Path, title: str = "") -> list[Path]:
        """The rank-ratio map of the plan (paper Fig. 7; :mod:`oodbench.methods.setar.figures`), when it has
        entries (a plan object, a run record's ``plan``, or the official ``[[tower, type, layer, ratio], ...]``)."""
        entries = plan if isinstance(plan, list) else plan.get("entries") if isinstance(plan, dict) else None
        if not (isinstance(entries, list) and entries):
            return []
        from .figures import plot_plan

        return plot_plan(plan, stem, title=title)

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        from dataclasses import fields

        keep = ("searcher", "weight_type", "modality", "prune", "include_projection", "metric")
        return {f.name: f.default for f in fields(SearchConfig) if f.name in keep}

    # ------------------------------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, batch_flags: tuple[str, ...] = ("--search-batch-size",),
                      **kwargs: Any) -> None:
        g = parser.add_argument_group("SeTAR (defaults: the paper's preset for the backbone and benchmark)")
        g.add_argument("--plan", dest="plan_file", default=None, metavar="FILE",
                       help="SeTAR plan JSON (skips the search)")
        g.add_argument("--searcher", default=None, choices=SEARCHERS,
                       help="greedy search order: SeTAR-S (vision top->bottom then text), MIS (interleaved), "
                            "LES (layer-exhaustive)")
        g.add_argument("--weight-type", default=None, choices=("W_q", "W_k", "W_v", "W_o", "W_up", "W_down", "W_p"),
                       help="weight searched in every block (default W_up)")
        g.add_argument("--modality", default=None, choices=MODALITIES, help="towers searched")
        g.add_argument("--lambda", dest="lam", type=at_least(0, float), default=None, help="weight of the LoCoOp OOD term")
        g.add_argument("--topk", dest="top_k", type=at_least(0), default=None, help="K of the top-K OOD-patch mask")
        g.add_argument(*batch_flags, dest="search_batch_size", type=at_least(1), default=None,
                       help="batch size of the loss aggregation (official: 512; Swin 384)")
        g.add_argument("--prune", default=None, choices=PRUNE_STRATEGIES,
                       help="which singular components are removed (default minor; random draws with --seed)")
        g.add_argument("--ratios", default=None, help="candidate ratios, comma-separated (default 0,0.05,...,0.40)")
        g.add_argument("--include-projection", action="store_true", default=None,
                       help="also search the projections W_p before each tower's blocks (paper Table 4; off in SeTAR)")
        g.add_argument("--tf32", action="store_true", default=None,
                       help="allow TF32 tensor cores on CUDA during the search (faster; not bit-exact fp32, recorded)")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        opts = {k: getattr(args, k, None) for k in ("searcher", "weight_type", "modality", "lam", "top_k", "prune",
                                                     "include_projection", "plan_file", "tf32")}
        opts["batch_size"] = getattr(args, "search_batch_size", None)
        opts["seed"] = getattr(args, "seed", None)
        if getattr(args, "ratios", None):
            try:
                opts["ratios"] = tuple(float(r) for r in args.ratios.split(","))
            except ValueError:
                raise UserError(f"--ratios expects comma-separated numbers, got '{args.ratios}'") from None
        return {k: v for k, v in opts.items() if v is not None}

    @classmethod
    def settings_text(cls, record: dict[str, Any]) -> str:
        """``λ 0.1, top-K 2, SeTAR-S, W_up, both towers, prune minor, seed 5; 4 weights reduced`` from a run's plan
        record (its search settings; a plan given as a file says so)."""
        return plan_words(record)

    # -------------------------------------------------------------------------------------- contract
    def check(self, ctx: MethodContext) -> None:
        """The plan file (exists, valid, fits the backbone) or the search settings; before any work."""
        from .modifier import find_target
        from .plan import Plan

        plan_file = self.options.get("plan_file")
        if plan_file:
            if ctx.backbone.kind not in self.backbone_kinds:
                super().check(ctx)
            plan = Plan.load(plan_file)
            for e in plan.active:
                find_target(ctx.backbone, e.tower, e.weight_type, e.layer)
            return
        super().check(ctx)
        config, _ = self.search_config(ctx)
        n_classes = len(ctx.benchmark.spec.class_names)
        if ctx.backbone.kind == "clip" and config.lam > 0 and config.top_k >= n_classes:
            # a warning, not an error: the paper's top-K study (Fig. 5) includes K = C, which is the ID loss only
            log.warning("top-K %d >= %d classes: no patch counts as OOD, so the LoCoOp OOD term vanishes and "
                        "lambda %g has no effect (the search minimises the ID loss only)", config.top_k, n_classes,
                        config.lam)
        if config.lam > 0 and config.top_k == 0:
            log.warning("top-K 0: every patch counts as OOD (the official rule), so the OOD term pushes every patch "
                        "towards high entropy")

    def search_config(self, ctx: MethodContext) -> tuple[SearchConfig, Any]:
        """The search settings: the published preset for (backbone family, benchmark family), then the options."""
        spec, backbone = ctx.benchmark.spec, ctx.backbone
        preset = search_preset(backbone.family, spec.family, len(spec.class_names),
                               label=f"{backbone.name} on {spec.name}")
        values: dict[str, Any] = {"lam": preset.lam, "top_k": preset.top_k, "batch_size": preset.batch_size,
                                  "seed": preset.seed}
        if backbone.kind != "clip":
            values["modality"] = "vision"
        values.update({k: v for k, v in self.options.items() if k in SEARCH_OPTIONS})
        return SearchConfig(**values), preset

    def prepare(self, ctx: MethodContext) -> Modification:
        plan, modifier = self.obtain_plan(ctx)
        return plan_modification(self.name, plan, modifier)

    # ---------------------------------------------------------------------------------------- plans
    def plan_key(self, ctx: MethodContext, config: SearchConfig) -> str:
        spec, backbone = ctx.benchmark.spec, ctx.backbone
        return hash_json({"weights": backbone.weights_hash(), "preprocess": backbone.preprocess_config(),
                          "val": ctx.benchmark.id_val.fingerprint(), "classes": list(spec.class_names),
                          "prompt": spec.prompt, "search": config.to_dict(), "tf32": bool(self.options.get("tf32")),
                          "version": PLAN_CACHE_VERSION})

    def obtain_plan(self, ctx: MethodContext) -> tuple[Plan, SetarModifier]:
        """The plan of ``--plan``, or the (cached) result of a search; and a modifier holding its SVDs."""
        from .modifier import SetarModifier
        from .plan import Plan

        modifier = SetarModifier()
        plan_file = self.options.get("plan_file")
        if plan_file:
            plan = Plan.load(plan_file)
            log.info("SeTAR plan %s from %s: %s", plan.hash(), plan_file, plan.describe())
            return plan, modifier
        config, preset = self.search_config(ctx)
        folder = ctx.caches.plans / self.plan_key(ctx, config)
        if distributed.broadcast_object((folder / "plan.json").is_file() if distributed.is_main() else None):
            plan = distributed.broadcast_object(Plan.load(folder / "plan.json") if distributed.is_main() else None)
            log.info("SeTAR plan %s reused from the cache (%s): %s", plan.hash(), folder, plan.describe())
            return plan, modifier
        result = self.search(ctx, config, preset, modifier)
        log.info("SeTAR plan %s: %s (search log in %s)", result.plan.hash(), result.plan.describe(), folder)
        return result.plan, modifier

    def search(self, ctx: MethodContext, config: SearchConfig | None = None, preset=None,
               modifier: SetarModifier | None = None) -> SearchResult:
        """Search a plan on the ID val split (a finished plan in the cache is not reused: the search runs).

        Each finished step is saved to ``<cache>/plans/<key>.partial/``, and a search interrupted before resumes
        from there. The result is stored in the plan cache (``<cache>/plans/<key>/``, reused by ``oodbench run
        --method setar``) and the partial folder removed.
        """
        from oodbench.runtime import set_float32_mode

        from .search import search

        if config is None:
            config, preset = self.search_config(ctx)
        source = ctx.benchmark.id_val
        spec = ctx.benchmark.spec
        tf32 = bool(self.options.get("tf32"))
        key = self.plan_key(ctx, config)
        partial = ctx.caches.plans / f"{key}.partial"
        images, labels = load_val_images(ctx.backbone, source, on_bad=ctx.on_bad)
        log.info("SeTAR search on %s (%d images), %s: lambda %g, K %d, batch %d (%s)", source.name, len(labels),
                 config.searcher, config.lam, config.top_k, config.batch_size, preset.source)
        set_float32_mode(tf32)
        try:
            dev = ctx.backbone.device
            result = search(ctx.backbone, images.to(dev), labels.to(dev), list(spec.class_names), spec.prompt, config,
                            modifier=modifier, checkpoint=partial)
        finally:
            set_float32_mode(False)
        result.plan.search.update({"preset": preset.source, "benchmark": spec.name, "val_split": source.name,
                                   "val_fingerprint": source.fingerprint(), "tf32": tf32})
        distributed.on_main(lambda: (save_search(result, ctx.caches.plans / key),  # several processes: rank 0 writes
                                     shutil.rmtree(partial, ignore_errors=True)), phase="search")
        return result

    # ------------------------------------------------------------------------- `oodbench search` output
    @staticmethod
    def save_search(result: SearchResult, folder: Path) -> Path:
        return save_search(result, folder)

    @staticmethod
    def search_summary(result: SearchResult) -> list:
        """Rich renderables for the terminal: the official per-step table and the plan."""
        return [steps_table(result), f"plan {result.plan.hash()}: {result.plan.describe()}",
                f"plan.json, search_steps.csv, search_candidates.csv, search_log.json; "
                f"{len(result.log.candidates)} candidates in {result.log.seconds:.1f} s"]


def steps_table(result: SearchResult):
    """The official per-step columns: the accepted ratio and the running best after each step."""
    from rich.table import Table

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


SEARCHER_WORDS = {"setar-s": "SeTAR-S", "les": "LES", "mis": "MIS"}
MODALITY_WORDS = {"both": "both towers", "vision": "vision tower", "text": "text tower"}


def search_words(search: dict[str, Any]) -> str:
    """A plan's search settings in words: ``λ 0.1, top-K 2, SeTAR-S, W_up, both towers, prune minor, seed 5``
    (the settings the record lacks are left out)."""
    search = search or {}
    lam = search.get("lambda", search.get("lam"))
    parts = [f"λ {lam:g}" if isinstance(lam, (int, float)) else "",
             f"top-K {search['top_k']}" if search.get("top_k") is not None else "",
             SEARCHER_WORDS.get(search.get("searcher"), search.get("searcher") or ""),
             str(search.get("weight_type") or ""),
             MODALITY_WORDS.get(search.get("modality"), search.get("modality") or ""),
             f"prune {search['prune']}" if search.get("prune") else "",
             f"seed {search['seed']}" if search.get("seed") is not None else ""]
    return ", ".join(p for p in parts if p)


def plan_words(plan: dict[str, Any]) -> str:
    """A stored plan in words: its search settings (:func:`search_words`) and how many weights it reduces; a plan
    without search settings (``--plan FILE``, an imported plan) says ``plan file``."""
    plan = plan or {}
    entries = [e for e in plan.get("entries") or [] if isinstance(e, dict)]
    active = sum(1 for e in entries if e.get("ratio"))
    words = search_words(plan.get("search") or {})
    if not words and entries:
        words = "plan file" + (f", prune {plan['prune']}" if plan.get("prune") else "")
    return "; ".join(w for w in (words, f"{active} of {len(entries)} weights reduced" if entries else "") if w)


def plan_modification(method: str, plan: Plan, modifier: SetarModifier | None = None) -> Modification:
    """A :class:`Modification` applying ``plan`` with ``modifier`` (whose cached SVDs are reused)."""
    from .modifier import SetarModifier

    modifier = modifier or SetarModifier()

    def apply(backbone):
        modifier.apply(backbone, plan)
        return modifier.restore

    return Modification(method=method, key=plan.hash(), record={"name": method, "hash": plan.hash(), **plan.to_dict()},
                        apply_fn=apply)


def load_val_images(backbone, source, batch_size: int = 256, on_bad: str = "skip") -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed ID val images ``[N, 3, H, W]`` and labels ``[N]``, in list order.

    Unreadable files are left out with a warning (``on_bad="skip"``) or raise :class:`DataError` (``"fail"``).
    """
    import numpy as np
    import torch

    from oodbench.data.loader import SourceDataset, collate

    loader = torch.utils.data.DataLoader(SourceDataset(source, backbone.preprocess()), batch_size=batch_size,
                                         shuffle=False, num_workers=0, collate_fn=collate)
    images, indices, bad = [], [], []
    for x, idx, b in loader:
        bad += b
        if x is not None:
            images.append(x)
            indices.append(idx)
    if bad and on_bad == "fail":
        raise DataError(f"{source.name}: unreadable image {source.describe(bad[0][0])} ({bad[0][1]}) — fix or remove "
                        "it, or pass --on-bad skip to leave unreadable images out")
    if not images:
        raise DataError(f"{source.name}: none of its {len(source)} images could be read for the SeTAR search")
    if bad:
        log.warning("%s: %d unreadable image(s) left out of the SeTAR search (e.g. %s)", source.name, len(bad),
                    source.describe(bad[0][0]))
    idx = torch.cat(indices)
    labels = torch.as_tensor(np.array(source.labels), dtype=torch.int64)[idx]
    return torch.cat(images), labels


def save_search(result: SearchResult, folder: Path) -> Path:
    """Write plan and logs into ``folder`` in one step (an atomic folder), so no half-written plan is read."""
    with atomic.folder(folder) as tmp:
        result.save(tmp)
        atomic.write_text(tmp / "search_info.json", json.dumps({"seconds": result.log.seconds, **result.info}) + "\n")
    return Path(folder)
