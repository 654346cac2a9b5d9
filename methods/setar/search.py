"""SeTAR's greedy searches for per-weight rank reduction ratios: SeTAR-S, MIS and LES.

Paper: Li et al., SeTAR, NeurIPS 2024, Sec. 3.1 (Algorithm 1) and Sec. 4.4 (Table 5: LES, MIS, SeTAR-S).
Original code: X1AOX1A/SeTAR ``src/svd_ood/svd_ood/searchers.py`` (``VisualTextSearch``,
``ModalityInterleavedSearch``, ``LayerExhaustiveSearch``, ``VisualSearchForSwin``) and
``src/svd_ood/svd_ood/utils/search_utils.py`` (acceptance rule).

* **SeTAR-S** (``visual_text``): image tower top -> bottom, then text tower top -> bottom; at each step every
  candidate ratio of that weight.
* **MIS** (``modality_interleaved``): image block L-1, text block L-1, image block L-2, ... (needs towers of
  equal depth; the paper notes it fails for CLIP-L, 24 image and 12 text blocks).
* **LES** (``layer_exhaustive``): at each step every remaining weight x every ratio; the best pair is accepted
  and its weight removed from the pool; quadratic in the number of weights.

Acceptance (spec §4.3): the best loss is initialised to +inf once, before the loop, and is global across
steps; a candidate becomes the best only if its loss is **strictly** lower; each step starts from "ratio 0 of
the step's first weight", so a step that improves nothing keeps that weight unmodified; ties go to the earlier
candidate. Candidates are evaluated by :class:`~oodbench.methods.setar.evaluator.FastEvaluator`, which gives
the losses of the official per-candidate full re-evaluation without re-running what a candidate cannot change.

Under ``torchrun`` (:mod:`oodbench.distributed`) the validation images (and the class prompts) are divided over
the processes, not the candidates: every process evaluates every candidate on its contiguous share of the images,
the per-image loss terms are all-gathered and reduced in image order (``FastEvaluator``), so every process holds
the same losses, accepts the same candidates with the single-process loop and keeps the same state; no candidate
is computed twice and each process does 1/N of every candidate's forward work. The plan, the log and every loss
are those of one process. Only rank 0 reads and writes the checkpoint, which any number of processes may resume.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from oodbench import distributed
from oodbench.backbones.base import Backbone
from oodbench.console import progress
from oodbench.errors import IncompatibleError, UserError

from .config import METRICS, MODALITIES, PRUNE_STRATEGIES, SEARCHERS, SearchConfig  # noqa: F401  (re-exported)
from .evaluator import FastEvaluator, Target
from .loss import LOSS_KEYS, LossResult
from .modifier import SetarModifier
from .plan import Plan, PlanEntry
from .searchlog import SearchCheckpoint, SearchLog, SearchState

logger = logging.getLogger("oodbench")


@dataclass
class SearchResult:
    """The selected plan and the search log."""

    plan: Plan
    log: SearchLog
    best: LossResult | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path, plan_name: str = "plan.json") -> dict[str, Path]:
        """Write the plan and, next to it, ``search_steps.csv``, ``search_candidates.csv``, ``search_log.json``."""
        paths = self.log.save(directory)
        paths["plan"] = self.plan.save(Path(directory) / plan_name)
        return paths


# ----------------------------------------------------------------------------------------------- orders
def search_order(towers: dict[str, int], config: SearchConfig) -> list[Target]:
    """The (tower, weight_type, layer) sequence of SeTAR-S / the pool order of LES / the MIS interleaving."""
    names = _searched_towers(towers, config)
    wt = config.weight_type

    def tower_seq(t: str) -> list[Target]:
        proj = [(t, "W_p", -1)] if config.include_projection else []
        return proj + [(t, wt, i) for i in range(towers[t] - 1, -1, -1)]

    if config.searcher != "mis":
        return [x for t in names for x in tower_seq(t)]
    if names != ["vision", "text"]:
        raise UserError("MIS interleaves the image and text towers: use --modality both with a CLIP backbone")
    if towers["vision"] != towers["text"]:
        raise IncompatibleError(
            f"MIS needs towers of equal depth (image {towers['vision']}, text {towers['text']} blocks); use setar-s or les"
        )
    order: list[Target] = [("vision", "W_p", -1), ("text", "W_p", -1)] if config.include_projection else []
    for i in range(towers["vision"] - 1, -1, -1):
        order += [("vision", wt, i), ("text", wt, i)]
    return order


def _searched_towers(towers: dict[str, int], config: SearchConfig) -> list[str]:
    if "text" not in towers:  # classifiers
        if config.modality == "text":
            raise IncompatibleError("this backbone has no text tower; use --modality vision")
        return ["vision"]
    return ["vision", "text"] if config.modality == "both" else [config.modality]


# ----------------------------------------------------------------------------------------------- search
def search(backbone: Backbone, images: torch.Tensor, labels: torch.Tensor, class_names: list[str] | None = None,
           prompt: str = "a photo of a {}", config: SearchConfig | None = None,
           modifier: SetarModifier | None = None, checkpoint: str | Path | None = None) -> SearchResult:
    """Run a SeTAR search on the ID validation images and return the selected plan and the log.

    Args:
        backbone: a ``clip`` or ``classifier`` backbone (on its device, eval mode).
        images: preprocessed validation images ``[N, 3, H, W]``, in the official (unshuffled) order.
        labels: ``[N]`` class indices.
        class_names: class names (CLIP); prompts are ``prompt.format(name)``.
        prompt: prompt template (SeTAR: ``"a photo of a {}"``, no period).
        config: search settings (default :class:`SearchConfig`).
        modifier: a modifier to reuse (its cached SVDs); one is created otherwise. The backbone's weights are
            restored before returning.
        checkpoint: a folder where each finished step is saved (:class:`~.searchlog.SearchCheckpoint`). A search
            started with the same folder, inputs and settings resumes after the last finished step and gives the
            same plan, steps and candidate losses as one that was never interrupted (only ``seconds`` differ).
            The caller keys the folder by the inputs (the images are not checked) and removes it when done.

    Returns:
        :class:`SearchResult` with the plan (every searched weight, ratio 0 included) and the log.
    """
    config = config or SearchConfig()
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise UserError(f"search: {images.shape[0]} images but {labels.shape[0]} labels")
    if backbone.kind == "clip" and not class_names:
        raise UserError("search: a CLIP backbone needs the class names")
    prompts = [prompt.format(c) for c in class_names] if backbone.kind == "clip" else None
    if backbone.kind != "clip" and "local_logits" not in backbone.provides and config.lam > 0:
        logger.warning("%s has no per-position logits: the search uses the ID loss only (lambda = 0)", backbone.name)
    order = search_order(backbone.towers(), config)
    modifier = modifier or SetarModifier()
    modifier.attach(backbone)
    settings = config.to_dict() | {"backbone": backbone.name, "n_images": int(images.shape[0]),
                                   "n_classes": len(class_names) if class_names else None, "prompt": prompt}
    ckpt = SearchCheckpoint(checkpoint, settings, order) if checkpoint is not None else None
    # several processes: rank 0 alone reads and writes the checkpoint; the others get its state
    state = distributed.broadcast_object(ckpt.load() if ckpt is not None and distributed.is_main() else None)
    before = state.seconds if state is not None else 0.0
    start = time.perf_counter()
    try:
        with torch.no_grad():
            ev = FastEvaluator(backbone, images, labels, prompts, lam=config.lam, top_k=config.top_k,
                               batch_size=config.batch_size, prune=config.prune, seed=config.seed, modifier=modifier,
                               forward_batch_size=config.forward_batch_size, text_batch_size=config.text_batch_size)
            svds = ev.share_factors(order)  # several processes: each SVD computed by one of them
            if state is not None:
                logger.info("SeTAR search: resuming after step %d of %d (%s)", state.steps_done - 1, len(order),
                            ckpt.path)
                ev.resume(state.accepted, state.best)
                ev.forward_passes = state.forward_passes
            log = state.log if state is not None else SearchLog(settings=settings)

            def save_step(accepted: list[tuple[Target, float]], best: LossResult) -> None:
                ckpt.save(SearchState(list(accepted), best, log, ev.forward_passes,
                                      before + time.perf_counter() - start))

            accepted, best = greedy(ev, order, config, log, resume=state,
                                    on_step=save_step if ckpt is not None else None)
    finally:
        modifier.restore()
    world = distributed.world()
    forward_passes = ev.forward_passes  # every process runs each forward pass, on its share of the images
    log.seconds = before + time.perf_counter() - start
    ev.record_efficiency(log)
    plan = Plan([PlanEntry(*t, r) for t, r in accepted], config.prune, config.seed, dict(settings))
    logger.info("SeTAR search (%s) done in %.1f s: %d candidates, %d forward passes; plan %s",
                config.searcher, log.seconds, len(log.candidates), forward_passes, plan.describe())
    return SearchResult(plan, log, best, {"forward_passes": forward_passes, "candidates_computed": log.n_computed,
                                          "world_size": world.size,
                                          "image_shares": distributed.all_gather_object(ev.n_local),
                                          "svds_per_rank": svds})


def greedy(ev, order: list[Target], config: SearchConfig, log: SearchLog, resume: SearchState | None = None,
           on_step: Callable[[list[tuple[Target, float]], LossResult], None] | None = None,
           ) -> tuple[list[tuple[Target, float]], LossResult | None]:
    """The acceptance loop shared by the three searchers (spec §4.3).

    ``ev`` provides ``evaluate(target, ratio) -> (LossResult, removed, computed)``, ``mark_best()``,
    ``accept(target, ratio, result)`` and ``forget(target)`` (and ``resume(accepted, best)``, called by
    :func:`search` before a resumed loop).

    Args:
        resume: the state after the last finished step of an interrupted search: its accepted settings and global
            best are taken over and the loop goes on with the next step (``log`` must be the state's log).
        on_step: called with the accepted settings and the global best after each finished step.
    """
    exhaustive = config.searcher == "les"
    n_ratios = len(config.ratios)
    n = len(order)
    total = n_ratios * (n * (n + 1) // 2 if exhaustive else n)
    metric = config.metric
    best: LossResult | None = resume.best if resume is not None else None
    best_value = getattr(best, metric) if best is not None else float("inf")
    accepted: list[tuple[Target, float]] = list(resume.accepted) if resume is not None else []
    done = {t for t, _ in accepted}
    pool = [t for t in order if t not in done]
    with progress() as bar:
        task = bar.add_task(f"SeTAR {config.searcher}", total=total, completed=len(log.candidates))
        step = len(accepted)
        while pool:
            step_targets = pool if exhaustive else pool[:1]
            best, best_value, best_setting = _step(ev, step, step_targets, config, log, best, best_value, bar, task)
            target, ratio = best_setting
            if best is None:
                raise UserError(f"search: the {metric} is not a finite number for {target}; check the inputs")
            ev.accept(target, ratio, best)
            ev.forget(target)
            accepted.append(best_setting)
            pool.remove(target)
            log.add_step(step, target, ratio, best)
            if on_step is not None:
                distributed.on_main(lambda: on_step(accepted, best), phase="search")
            logger.info("step %d: %s %s layer %d -> ratio %.2f (%s %.6f, acc %.2f)", step, *target, ratio, metric,
                        best_value, best.acc)
            step += 1
    return accepted, best


def _step(ev, step: int, step_targets: list[Target], config: SearchConfig, log: SearchLog, best, best_value: float,
          bar, task):
    """The candidates of one step, in order, in this process: ``(best, best value, accepted setting)``."""
    metric = config.metric
    best_setting: tuple[Target, float] = (step_targets[0], 0.0)
    for target in step_targets:
        bar.update(task, description=f"SeTAR {config.searcher} step {step} {target[0]} {target[1]} {target[2]}")
        for ratio in config.ratios:
            t0 = time.perf_counter()
            result, removed, computed = ev.evaluate(target, ratio)
            seconds = time.perf_counter() - t0
            value = getattr(result, metric)
            improved = value < best_value
            if improved:
                best, best_value = result, value
                best_setting = (target, ratio)
                ev.mark_best()
            log.add_candidate(step, target, ratio, removed, result, computed, improved, seconds)
            bar.advance(task)
    return best, best_value, best_setting


__all__ = ["SearchConfig", "SearchResult", "search", "search_order", "greedy", "SEARCHERS", "LOSS_KEYS"]
