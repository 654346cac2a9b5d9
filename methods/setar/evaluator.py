"""Fast evaluation of SeTAR search candidates: re-run only what a candidate can change.

Paper: Li et al., SeTAR, NeurIPS 2024 (Sec. 3.1, Algorithm 1). Original code: X1AOX1A/SeTAR
``src/svd_ood/svd_ood/searchers.py`` (``BaseSearch.compute_metrics_loss`` reloads the model, recomputes every
SVD and runs both towers on the whole validation set for each candidate). Here, with the same numbers:

* the SVD of each pristine weight is computed once (:class:`~oodbench.methods.setar.modifier.SetarModifier`)
  and a candidate rebuilds its weight from the cached factors;
* the hidden state entering the searched block is computed once per (tower, layer) and configuration below
  it (the blocks below are not changed by a candidate) and every candidate runs only the blocks from there up
  (``Backbone.hidden`` / ``Backbone.forward_from``);
* on a backbone with ``layer_states`` (``Backbone.hidden_from``) one forward keeps the state entering every block,
  and a state is computed from the nearest kept one below instead of from the input: a top -> bottom search
  (SeTAR-S, MIS) runs the blocks below the searched one once in all, not once per step. What is kept is bounded
  by ``state_bytes`` (default :data:`DEFAULT_STATE_BYTES`); when not every state fits, evenly spaced ones are
  kept and a step re-runs at most the blocks between two of them;
* the other tower's outputs (text embeddings while the image tower is searched, image global and local
  embeddings while the text tower is searched) are cached for the accepted configuration, and the outputs of
  the accepted candidate become the new cache instead of being recomputed;
* for ``W_up`` / ``W_down`` on a backbone that offers it (CLIP: ``hidden_mlp`` / ``forward_from_mlp``), the cached
  state is taken after the searched block's attention half, which those weights do not touch, so a candidate
  re-runs only that block's MLP half and the blocks above (bit-identical to running the whole block);
* on a CLIP backbone everything runs in the backbone's search arithmetic
  (:func:`~oodbench.backbones.clip_blocks.fast_arithmetic`: SDPA attention, the last image block's projections
  shared by the class token and the value path, the last text block for the pooled token only), equal to the
  extraction's arithmetic to float32 rounding;
* a candidate that removes no component (ratio 0, or a ratio that rounds to rank 0) leaves the accepted
  configuration, whose loss is known, and candidates of one weight that remove the same number of components
  are the same model: neither is run again (both are still logged);
* the loss is reduced from per-image terms (:func:`~.loss.image_terms`, :func:`~.loss.reduce_image_terms`: the
  official batch-size-weighted mean of per-batch terms, summed in float64 in image order), so under several
  processes (:mod:`oodbench.distributed`) each holds a contiguous share of the images and of the prompts, runs
  every candidate on it, and all-gathers the terms (and the text embeddings): every process gets the same losses,
  and no candidate is computed twice.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from torch.profiler import record_function

from oodbench import distributed
from oodbench.backbones.base import Backbone, TargetWeight

from .loss import LossResult, batches, image_terms, l2_normalize, reduce_image_terms
from .lowrank import removed_rank
from .modifier import SetarModifier, find_target

logger = logging.getLogger("oodbench")

Target = tuple[str, str, int]  # (tower, weight_type, layer); layer -1 = projection W_p

#: Default bound on the hidden states a search keeps (bytes). CLIP-B/16 at 1,000 images: 605 MB per image-tower
#: state (1,000 x 197 tokens x 768 floats x 4 B), so 7 of its 13 states fit and every second one is kept.
DEFAULT_STATE_BYTES = 4 << 30


class FastEvaluator:
    """LoCoOp loss of ``accepted configuration + one candidate`` with caching (see the module docstring).

    Args:
        backbone: a ``clip`` or ``classifier`` backbone with the layer-wise API, on its device.
        images: preprocessed validation images ``[N, 3, H, W]`` (any device; moved chunk by chunk).
        labels: ``[N]`` class indices.
        prompts: one text per class (CLIP), None for classifiers.
        lam, top_k, batch_size: LoCoOp lambda, K and aggregation batch size.
        prune, seed: how weights are cut.
        modifier: the modifier holding pristine weights and SVD factors (attached to ``backbone``).
        forward_batch_size: images per forward chunk; text_batch_size: prompts per text forward chunk.
        state_bytes: bound on the kept hidden states (see the module docstring); 0 keeps only the searched
            block's state and computes it from the input, as a backbone without ``layer_states``.
    """

    def __init__(self, backbone: Backbone, images: torch.Tensor, labels: torch.Tensor, prompts: list[str] | None,
                 *, lam: float, top_k: int, batch_size: int, prune: str, seed: int, modifier: SetarModifier,
                 forward_batch_size: int = 256, text_batch_size: int = 256, state_bytes: int = DEFAULT_STATE_BYTES):
        self.bb = backbone
        self.device = backbone.device
        self.is_clip = backbone.kind == "clip"
        self.n = int(labels.shape[0])
        # several processes (oodbench.distributed): this rank's contiguous share of the images and of the prompts
        self.world = distributed.world()
        self.image_share = distributed.share(self.n, self.world)
        self.labels = labels[self.image_share].to(self.device)
        self.n_local = int(self.labels.shape[0])
        self.lam, self.top_k, self.batch_size = lam, top_k, batch_size
        self.prune, self.seed = prune, seed
        self.mod = modifier
        self.num_layers = backbone.towers()
        mine = images[self.image_share]
        self.inputs: dict[str, list[Any]] = {"vision": [mine[sl] for sl in batches(self.n_local, forward_batch_size)]}
        self.n_classes = len(prompts) if prompts else 0
        if self.is_clip:
            if not prompts:
                raise ValueError("a CLIP search needs the class prompts")
            self.prompt_share = distributed.share(len(prompts), self.world)
            own = prompts[self.prompt_share]
            self.inputs["text"] = [backbone.tokenize(own[sl]) for sl in batches(len(own), text_batch_size)]
            self.scale = backbone.logit_scale()
        self._targets: dict[Target, TargetWeight] = {}
        self._hidden: dict[tuple[str, int, bool], list[torch.Tensor]] = {}  # (tower, layer, after attention)
        self.state_bytes = int(state_bytes) if "layer_states" in backbone.capabilities else 0
        self._tower_out: dict[str, Any] = {}  # tower -> outputs of the accepted configuration
        self._current: LossResult | None = None  # loss of the accepted configuration
        self._memo: dict[tuple[Target, int], LossResult] = {}
        self._last: tuple[Target, int, Any] | None = None
        self._best: tuple[Target, int, Any] | None = None
        self.forward_passes = 0

    # ---------------------------------------------------------------------------------- the protocol
    def target_weight(self, target: Target) -> TargetWeight:
        tw = self._targets.get(target)
        if tw is None:
            tw = self._targets[target] = find_target(self.bb, *target)
        return tw

    def removed(self, target: Target, ratio: float) -> int:
        return removed_rank(min(self.target_weight(target).shape), ratio)

    def _arithmetic(self):
        """The search's arithmetic: the backbone's fused one where it declares the ``fast_arithmetic`` capability
        (CLIP: :func:`~oodbench.backbones.clip_blocks.fast_arithmetic`)."""
        if "fast_arithmetic" in self.bb.capabilities:
            return self.bb.fast_arithmetic()
        return contextlib.nullcontext()

    @torch.no_grad()
    def evaluate(self, target: Target, ratio: float) -> tuple[LossResult, int, bool]:
        with self._arithmetic():
            return self._evaluate(target, ratio)

    def _evaluate(self, target: Target, ratio: float) -> tuple[LossResult, int, bool]:
        """Loss of the accepted configuration with ``target`` cut at ``ratio``.

        Returns:
            ``(result, removed_rank, computed)``; ``computed`` is False when no forward pass was needed.
        """
        removed = self.removed(target, ratio)
        self._last = None
        if removed == 0:
            if self._current is not None:
                return self._current, 0, False
            self._current = self._run(target, 0)
            self._tower_out.setdefault(target[0], self._last[2])
            return self._current, 0, True
        key = (target, removed)
        if key in self._memo:
            return self._memo[key], removed, False
        tw = self.target_weight(target)
        with record_function("setar.weights"):
            self.mod.set_ratio(tw, ratio, self.prune, self.seed)
        try:
            result = self._run(target, removed)
        finally:
            with record_function("setar.weights"):
                self.mod.reset(tw)
        self._memo[key] = result
        return result, removed, True

    def mark_best(self) -> None:
        """The candidate just evaluated became the global best: keep its outputs in case it is accepted."""
        self._best = self._last

    @torch.no_grad()
    def accept(self, target: Target, ratio: float, result: LossResult) -> None:
        """Make ``target`` at ``ratio`` part of the accepted configuration; ``result`` is its loss."""
        removed = self.removed(target, ratio)
        if removed > 0:
            tower, layer = target[0], self._hidden_index(target)
            self.mod.set_ratio(self.target_weight(target), ratio, self.prune, self.seed)
            for key in [k for k in self._hidden if k[0] == tower and (k[1] > layer or (k[1] == layer and k[2]))]:
                del self._hidden[key]
            if self._best is not None and self._best[:2] == (target, removed):
                self._tower_out[tower] = self._best[2]
            else:
                self._tower_out.pop(tower, None)
            self._current = result
        self._memo.clear()
        self._best = self._last = None

    def forget(self, target: Target) -> None:
        """Drop the cached hidden states of ``target`` (its weight will not be searched again)."""
        for mlp in (False, True):
            self._hidden.pop((target[0], self._hidden_index(target), mlp), None)

    def share_factors(self, targets: list[Target]) -> list[int]:
        """Several processes: the SVD factors of ``targets`` (the searched weights) computed once in all, weight ``i``
        by rank ``i mod N``, and broadcast from it over the device's collective, instead of every rank computing every
        SVD (on a GPU these are a fixed cost that would not divide). One process: nothing (factors are computed on a
        weight's first use). Returns how many SVDs each rank computed."""
        w = self.world
        if not w.active:
            return [0]
        from .lowrank import SVDFactors

        todo = [t for t in dict.fromkeys(targets) if not self.mod.has_factors(self.target_weight(t))]
        mine = [t for i, t in enumerate(todo) if i % w.size == w.rank]
        distributed.checked(lambda: [self.mod.factors(self.target_weight(t)) for t in mine], phase="search")
        for i, t in enumerate(todo):
            tw = self.target_weight(t)
            if i % w.size == w.rank:  # contiguous (a collective needs it), and every rank rebuilds from the same layout
                f = self.mod.factors(tw)
                tensors = (f.U.contiguous(), f.S.contiguous(), f.Vh.contiguous())
            else:
                out, inn = tw.shape
                k = min(out, inn)
                dev = tw.param.device
                tensors = (torch.empty(out, k, device=dev), torch.empty(k, device=dev), torch.empty(k, inn, device=dev))
            for x in tensors:
                distributed.broadcast_tensor(x, src=i % w.size, label="search SVD factors")
            self.mod.adopt_factors(tw, SVDFactors(*tensors))
        return [len(todo[r::w.size]) for r in range(w.size)]

    def resume(self, accepted: list[tuple[Target, float]], current: LossResult) -> None:
        """State of a search after the steps that accepted ``accepted``: those cuts applied, and ``current`` (the
        global best so far, which is the accepted configuration's loss) known, as :meth:`accept` leaves it."""
        for target, ratio in accepted:
            if self.removed(target, ratio) > 0:
                self.mod.set_ratio(self.target_weight(target), ratio, self.prune, self.seed)
        self._hidden.clear()
        self._tower_out.clear()
        self._memo.clear()
        self._best = self._last = None
        self._current = current

    def record_efficiency(self, log) -> dict[str, Any]:
        """Put the search's FLOP count and rate into ``log.efficiency`` (and log one line), with the fp32 rate of the
        model's own GEMMs timed right after the search (best of repeats, ``min(1, max(0.05, seconds / 50))`` s) as
        the reference. Under several processes: the FLOPs of every process (``per_rank_flops``, in rank order;
        ``unavoidable_flops`` is their sum), the rate and the fraction of this process (rank 0 writes the log)."""
        from .efficiency import model_matmul_rate, summary, unavoidable_flops

        flops = unavoidable_flops(self, log)
        rate, shapes = (model_matmul_rate(self, min(1.0, max(0.05, log.seconds / 50))) if flops is not None
                        else (None, []))
        per_rank = distributed.all_gather_object(flops)
        log.efficiency = summary(flops, log.seconds, rate)
        eff = log.efficiency
        eff["matmul_shapes"] = shapes
        if self.world.active:
            eff["unavoidable_flops"] = sum(per_rank) if flops is not None else None
            eff["per_rank_flops"] = per_rank
            eff["world_size"] = self.world.size
        if eff["matmul_fraction"] is not None:
            logger.info("SeTAR search: %.3g TFLOP of unavoidable work at %.1f GFLOP/s, %.0f%% of this device's fp32 "
                        "rate on the model's GEMMs (%.1f GFLOP/s)", flops / 1e12, eff["achieved_flops_per_s"] / 1e9,
                        100 * eff["matmul_fraction"], rate / 1e9)
        return eff

    # ----------------------------------------------------------------------------------- internals
    def _hidden_index(self, target: Target) -> int:
        tower, _, layer = target
        return self.num_layers[tower] if layer < 0 else layer

    def _mlp_stage(self, target: Target | None) -> bool:
        """Whether candidates of ``target`` can start after the attention half of their block."""
        return (target is not None and target[1] in ("W_up", "W_down") and target[2] >= 0
                and "mlp_stage" in self.bb.capabilities and target[2] < self.num_layers[target[0]])

    def _hidden_states(self, tower: str, layer: int, cache: bool = True, mlp: bool = False) -> list[torch.Tensor]:
        hs = self._hidden.get((tower, layer, mlp))
        if hs is None:
            if mlp:
                entering = self._hidden_states(tower, layer, cache=False)
                hs = [self.bb.hidden_mlp(tower, h, layer, self._dev(x)) for h, x in zip(entering, self.inputs[tower])]
            elif self.state_bytes > 0:
                hs = self._walk_up(tower, layer)
            else:
                hs = [self.bb.hidden(tower, self._dev(x), layer) for x in self.inputs[tower]]
            if cache:
                self._hidden[(tower, layer, mlp)] = hs
        return hs

    def _walk_up(self, tower: str, layer: int) -> list[torch.Tensor]:
        """The state entering ``layer`` from the nearest kept state below it (from the input when none), keeping the
        states passed on the way that :meth:`_keep` allows."""
        below = [k[1] for k in self._hidden if k[0] == tower and not k[2] and k[1] <= layer]
        xs = self.inputs[tower]
        if below:
            start = max(below)
            hs = self._hidden[(tower, start, False)]
        else:
            start = 0
            hs = [self.bb.hidden(tower, self._dev(x), 0) for x in xs]
            if layer > 0 and self._keep(tower, 0, hs):
                self._hidden[(tower, 0, False)] = hs
        for stop in range(start + 1, layer + 1):
            hs = [self.bb.hidden_from(tower, h, stop - 1, stop, self._dev(x)) for h, x in zip(hs, xs)]
            if stop < layer and self._keep(tower, stop, hs):
                self._hidden[(tower, stop, False)] = hs
        return hs

    def _keep(self, tower: str, layer: int, hs: list[torch.Tensor]) -> bool:
        """Whether to keep the state entering ``layer``: all of them when they fit in ``state_bytes``, otherwise
        every ``stride``-th, with the stride that makes the tower's states fit."""
        size = sum(h.numel() * h.element_size() for h in hs)
        if size == 0:
            return False
        fit = self.state_bytes // size
        if fit < 1:
            return False
        stride = -(-(self.num_layers[tower] + 1) // fit)
        if layer % stride:
            return False
        used = sum(h.numel() * h.element_size() for v in self._hidden.values() for h in v)
        return used + size <= self.state_bytes

    def _dev(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    def _tower(self, tower: str, layer: int, cache: bool = True, mlp: bool = False) -> list:
        with record_function("setar.tower"):
            hs = self._hidden_states(tower, layer, cache, mlp)
            self.forward_passes += 1
            run = self.bb.forward_from_mlp if mlp else self.bb.forward_from
            return [run(tower, h, layer, self._dev(x) if tower == "text" else None)
                    for h, x in zip(hs, self.inputs[tower])]

    def _vision_out(self, outs: list) -> Any:
        if not outs:  # this rank holds no image
            return None, None
        g = _cat([o.global_ for o in outs])
        loc = _cat([o.local for o in outs]) if outs[0].local is not None else None
        if self.is_clip:
            return l2_normalize(g), (l2_normalize(loc) if loc is not None else None)
        return g, loc

    def _text_out(self, outs: list) -> torch.Tensor:
        """This rank's prompts' normalised embeddings, gathered over the ranks (every prompt, in order)."""
        mine = distributed.checked(lambda: self._own_text(outs), phase="search")
        return distributed.all_gather_rows(mine, label="search text embeddings")

    def _own_text(self, outs) -> torch.Tensor:
        outs = outs() if callable(outs) else outs
        if not outs:  # this rank holds no prompt
            return torch.zeros((0, int(self.bb.embed_dim)), device=self.device)
        return l2_normalize(_cat([o.global_ for o in outs]))

    def _accepted(self, tower: str) -> Any:
        out = self._tower_out.get(tower)
        if out is None:
            if tower == "text":
                out = self._text_out(lambda: self._tower("text", 0, cache=False))
            else:
                out = self._vision_out(self._tower(tower, 0, cache=False))
            self._tower_out[tower] = out
        return out

    def _run(self, target: Target, removed: int) -> LossResult:
        """The candidate's loss: this rank's share of the searched tower, the per-image terms of this rank's images,
        all-gathered and reduced in image order (:func:`~.loss.reduce_image_terms`), so every rank gets the same
        numbers and no candidate is computed twice."""
        tower, layer, mlp = target[0], self._hidden_index(target), self._mlp_stage(target)
        if self.is_clip and tower == "text":
            text_n = self._text_out(lambda: self._tower("text", layer, mlp=mlp))
            self._last = (target, removed, text_n)

            def local() -> torch.Tensor:
                img_n, loc_n = self._accepted("vision")
                return self._terms(img_n, loc_n, text_n)
        else:
            text_n = self._accepted("text") if self.is_clip else None

            def local() -> torch.Tensor:
                out = self._vision_out(self._tower(tower, layer, mlp=mlp))
                self._last = (target, removed, out)
                return self._terms(*out, text_n)
        parts = distributed.all_gather_checked(local, phase="search")
        return reduce_image_terms(torch.cat(parts) if len(parts) > 1 else parts[0], self.lam, self.batch_size)

    def _terms(self, img: torch.Tensor | None, loc: torch.Tensor | None, text_n: torch.Tensor | None) -> torch.Tensor:
        """Per-image loss terms ``[n_local, 5]`` of this rank's images (:func:`~.loss.image_terms`), computed
        ``batch_size`` images at a time (the logits of one official batch at most are held)."""
        if img is None:
            return torch.zeros((0, 5), dtype=torch.float64)
        with record_function("setar.loss"):
            return self._terms_of(img, loc, text_n)

    def _terms_of(self, img: torch.Tensor, loc: torch.Tensor | None, text_n: torch.Tensor | None) -> torch.Tensor:
        parts = []
        for sl in batches(self.n_local, self.batch_size):
            g, lo = img[sl], (loc[sl] if loc is not None else None)
            if text_n is not None:  # CLIP: scaled cosine logits; a classifier's logits are used as they are
                g = g @ text_n.t() * self.scale
                lo = lo @ text_n.t() * self.scale if lo is not None else None
            parts.append(image_terms(g, lo, self.labels[sl], self.top_k))
        return torch.cat(parts)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(parts)`` without the copy when there is one part (one forward chunk: the usual case)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)
