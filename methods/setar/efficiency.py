"""How close a SeTAR search runs to the device's matrix-multiply rate.

The work an exact search cannot avoid (the official algorithm's plan and per-candidate losses, with nothing
recomputed that a candidate does not change) is: one forward of the unmodified model (both towers and the loss), then
for every candidate that removes components, the searched tower from the searched block up (from the searched block's
MLP half for ``W_up`` / ``W_down``), its heads and the loss. :func:`unavoidable_flops` counts it in matrix-multiply
FLOPs (:mod:`oodbench.backbones.clip_flops`); :func:`matmul_rate` times a large fp32 GEMM on the same device and
threads, and the search's fraction is ``unavoidable FLOPs / seconds / GEMM rate``. Everything else the search runs
(states recomputed after an accepted cut, attention halves, norms, activations, Python) shows as the distance to 1.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from oodbench.backbones.clip_flops import loss_flops, text_flops, vision_flops

if TYPE_CHECKING:  # pragma: no cover
    from .evaluator import FastEvaluator
    from .searchlog import SearchLog


def unavoidable_flops(ev: "FastEvaluator", log: "SearchLog") -> int | None:
    """FLOPs of the work an exact search cannot avoid for the candidates of ``log`` (None for non-CLIP backbones)."""
    if not ev.is_clip:
        return None
    bb = ev.bb
    n_images = ev.n
    n_classes = sum(int(ids.shape[0]) for ids in ev.inputs["text"])
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


def matmul_rate(device: torch.device | str, size: int | None = None, seconds: float = 1.0) -> float:
    """fp32 FLOP/s of ``[n, n] @ [n, n]`` on ``device`` with the current threads and float32 matmul settings.

    ``size`` defaults to 2048 on a CPU and 8192 on a GPU; products are repeated for about ``seconds`` after one
    warm-up, and the fastest repetition counts.
    """
    device = torch.device(device)
    n = size or (8192 if device.type == "cuda" else 2048)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    out = torch.empty(n, n, device=device)
    torch.mm(a, b, out=out)
    sync(device)
    best = float("inf")
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start >= seconds:
            break
    return 2.0 * n**3 / best


def summary(flops: int | None, seconds: float, rate: float | None) -> dict[str, Any]:
    """``unavoidable_flops``, ``achieved_flops_per_s``, ``matmul_flops_per_s`` and their ratio ``matmul_fraction``."""
    out: dict[str, Any] = {"unavoidable_flops": flops, "achieved_flops_per_s": None, "matmul_flops_per_s": rate,
                           "matmul_fraction": None}
    if flops is not None and seconds > 0:
        out["achieved_flops_per_s"] = flops / seconds
        if rate:
            out["matmul_fraction"] = flops / seconds / rate
    return out
