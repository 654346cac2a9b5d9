"""How close a SeTAR search runs to the device's matrix-multiply rate.

The work an exact search cannot avoid (the official algorithm's plan and per-candidate losses, with nothing
recomputed that a candidate does not change) is: one forward of the unmodified model (both towers and the loss), then
for every candidate that removes components, the searched tower from the searched block up (from the searched block's
MLP half for ``W_up`` / ``W_down``), its heads and the loss. :func:`unavoidable_flops` counts it in matrix-multiply
FLOPs (:mod:`oodbench.methods.setar.flops`); :func:`model_matmul_rate` times the fp32 GEMMs of the model's own
linear layers at the search's own row count (best of repeats) on the same device and threads, and the search's
fraction is ``unavoidable FLOPs / seconds / GEMM rate``. Everything else the search runs (states recomputed after an
accepted cut, attention products, SVDs, norms, activations, the loss's softmax, Python) shows as the distance to 1.
Under several processes each counts the work of its own share of the images and prompts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from oodbench.methods.setar.flops import loss_flops, text_flops, vision_flops

if TYPE_CHECKING:  # pragma: no cover
    from .searchlog import SearchLog

#: ``ev`` below is the search's :class:`~oodbench.methods.setar.evaluator.FastEvaluator` (which imports this module,
#: so it is not imported here).
FastEvaluator = Any


def unavoidable_flops(ev: "FastEvaluator", log: "SearchLog") -> int | None:
    """FLOPs of the work an exact search cannot avoid for the candidates of ``log`` (None for non-CLIP backbones)."""
    if not ev.is_clip:
        return None
    bb = ev.bb
    n_images = ev.n_local  # this process's share (all of them for one process)
    n_classes = ev.n_classes
    loss = loss_flops(n_images, bb.num_patches, bb.embed_dim, n_classes)

    def tower(name: str, layer: int, mlp: bool) -> int:
        if name == "vision":
            return vision_flops(bb, n_images, layer, mlp)
        return sum(text_flops(bb, ids, layer, mlp) for ids in ev.inputs["text"])

    total = tower("vision", -1, False) + tower("text", -1, False) + loss  # the unmodified model, once
    for c in log.candidates:
        if not c.computed or c.removed_rank == 0:
            continue
        target = (c.tower, c.weight_type, c.layer)
        total += tower(c.tower, ev._hidden_index(target), ev._mlp_stage(target)) + loss
    return total


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_mm_seconds(m: int, k: int, n: int, device: torch.device, seconds: float, min_repeats: int = 1,
                    generator: torch.Generator | None = None) -> float:
    """The fastest of repeated fp32 ``[m, k] @ [k, n]`` products on ``device`` (one warm-up, then repeated for about
    ``seconds`` and at least ``min_repeats`` times), in seconds."""
    g = generator or torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g).to(device)
    b = torch.randn(k, n, generator=g).to(device)
    out = torch.empty(m, n, device=device)
    torch.mm(a, b, out=out)
    sync(device)
    best, reps, start = float("inf"), 0, time.perf_counter()
    while reps < min_repeats or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def matmul_rate(device: torch.device | str, size: int | None = None, seconds: float = 1.0) -> float:
    """fp32 FLOP/s of ``[n, n] @ [n, n]`` on ``device`` with the current threads and float32 matmul settings.

    ``size`` defaults to 2048 on a CPU and 8192 on a GPU; products are repeated for about ``seconds`` after one
    warm-up, and the fastest repetition counts.
    """
    device = torch.device(device)
    n = size or (8192 if device.type == "cuda" else 2048)
    return 2.0 * n**3 / best_mm_seconds(n, n, n, device, seconds)


def model_matmul_rate(ev: "FastEvaluator", seconds: float = 1.0, min_repeats: int = 3) -> tuple[float, list]:
    """fp32 FLOP/s of the model's own GEMMs as the search runs them, best of repeats.

    The products are those of one image-tower block (CLIP; the largest tower of a classifier is not timed: returns
    ``(nan, [])``) at the search's forward chunk (``rows`` = images of one chunk x tokens): the packed query/key/value
    projection, the attention output projection, the MLP's up and down projections. Each is repeated for about
    ``seconds / 4`` (at least ``min_repeats`` times) after one warm-up; the rate is their total FLOPs over the sum of
    their fastest repetitions.

    Returns:
        ``(rate, [[rows, inner, outer], ...])``.
    """
    if not ev.is_clip:
        return float("nan"), []
    from oodbench.methods.setar.flops import _dims

    bb = ev.bb
    width, mlp = _dims(bb.visual.transformer.resblocks)
    chunk = int(ev.inputs["vision"][0].shape[0]) if ev.inputs["vision"] else 1
    rows = max(1, chunk) * (bb.num_patches + 1)
    shapes = [[rows, width, 3 * width], [rows, width, width], [rows, width, mlp], [rows, mlp, width]]
    device, g = torch.device(ev.device), torch.Generator().manual_seed(0)
    total_time = sum(best_mm_seconds(m, k, n, device, seconds / len(shapes), min_repeats, g) for m, k, n in shapes)
    return sum(2.0 * m * k * n for m, k, n in shapes) / total_time, shapes


def summary(flops: int | None, seconds: float, rate: float | None) -> dict[str, Any]:
    """``unavoidable_flops``, ``achieved_flops_per_s``, ``matmul_flops_per_s`` and their ratio ``matmul_fraction``."""
    out: dict[str, Any] = {"unavoidable_flops": flops, "achieved_flops_per_s": None, "matmul_flops_per_s": rate,
                           "matmul_fraction": None}
    if flops is not None and seconds > 0:
        out["achieved_flops_per_s"] = flops / seconds
        if rate:
            out["matmul_fraction"] = flops / seconds / rate
    return out
