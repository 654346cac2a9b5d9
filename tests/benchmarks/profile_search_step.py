"""Profile one step of the SeTAR search (torch.profiler): where the time goes besides the matrix products.

A random CLIP (``--backbone``), seeded random pixels, SeTAR-S on ``W_up``. The evaluator is built and the steps
above the profiled one are run first (so the kept layer states exist as in a real search); then one step (every
ratio of one weight, the acceptance included) runs under the profiler. Reported:

* regions (``record_function`` labels of the evaluator, inclusive time): ``setar.tower`` (the searched tower's
  forward on the candidate), ``setar.loss`` (the logits and the per-image LoCoOp terms), ``setar.weights``
  (rebuilding the searched weight from its SVD factors, the SVD itself on the weight's first use, restoring it);
* operator categories by self time: GEMM (``mm``/``addmm``/``bmm``/``linear``), attention (SDPA kernels, GEMMs
  inside), SVD, copies (``copy_``, ``cat``, ``clone``, indexing, ...), elementwise and normalisation, reductions and
  softmax, other;
* the top operators by self time.

Shares are of the profiled step's total self time (CPU time on a CPU; CUDA kernel time on a GPU), which does not
depend much on other processes sharing the machine, unlike a rate.

Usage::

    python tests/benchmarks/profile_search_step.py --backbone clip_vit_b16 --n-images 16 --n-classes 100 --layer 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

GEMM = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul", "aten::addmv",
        "aten::mv", "aten::dot")
ATTENTION = ("scaled_dot_product", "flash_attention", "efficient_attention", "_sdpa")
COPIES = ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to",
          "aten::index", "aten::index_select", "aten::masked_select", "aten::nonzero", "aten::index_put",
          "aten::stack", "aten::_unsafe_view", "aten::reshape", "aten::empty_like", "aten::zeros", "aten::fill_",
          "aten::zero_", "aten::empty", "aten::resize_", "aten::expand", "aten::t", "aten::transpose",
          "aten::permute", "aten::view", "aten::slice", "aten::select", "aten::as_strided", "aten::unsqueeze",
          "aten::split", "aten::chunk", "aten::unbind", "aten::narrow")
ELEMENTWISE = ("aten::add", "aten::mul", "aten::div", "aten::sub", "aten::sigmoid", "aten::gelu", "aten::layer_norm",
               "aten::native_layer_norm", "aten::log", "aten::exp", "aten::neg", "aten::rsub", "aten::norm",
               "aten::linalg_vector_norm", "aten::pow", "aten::sqrt", "aten::where", "aten::eq", "aten::ne",
               "aten::clamp", "aten::abs")
REDUCTIONS = ("aten::softmax", "aten::_softmax", "aten::log_softmax", "aten::_log_softmax", "aten::sum",
              "aten::mean", "aten::topk", "aten::argmax", "aten::max", "aten::nll_loss", "aten::cross_entropy",
              "aten::any", "aten::all", "aten::cumsum", "aten::index_add_")
REGIONS = ("setar.tower", "setar.loss", "setar.weights")


def category(name: str) -> str:
    low = name.lower()
    if any(k in low for k in ATTENTION):
        return "attention (SDPA)"
    if "svd" in low or low.startswith("aten::linalg_svd") or "gesdd" in low:
        return "SVD"
    for cat, names in (("GEMM", GEMM), ("copies and views", COPIES), ("elementwise and norms", ELEMENTWISE),
                       ("reductions, softmax, loss", REDUCTIONS)):
        if any(name == n or name.startswith(n + "_") or name == n + "_" for n in names):
            return cat
    return "other"


def profile_step(backbone: str = "test_clip_tiny", device: str = "cpu", n_images: int = 8, n_classes: int = 4,
                 layer: int | None = None, ratios=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4), top_k: int = 3,
                 lam: float = 0.1, forward_batch_size: int = 256, threads: int = 0, seed: int = 0,
                 top: int = 15) -> dict:
    """Profile one SeTAR-S step on ``W_up`` of image block ``layer`` (default: the middle one); returns the
    breakdown."""
    from torch.profiler import ProfilerActivity, profile

    from oodbench.backbones import create_backbone
    from oodbench.methods.setar.evaluator import FastEvaluator
    from oodbench.methods.setar.modifier import SetarModifier
    from oodbench.methods.setar.search import SearchConfig
    from oodbench.methods.setar.searchlog import SearchLog
    from oodbench.methods.setar.search import _step

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    bb = create_backbone(backbone, pretrained="random", seed=seed).to(dev)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, 3, bb.image_size, bb.image_size, generator=g)
    labels = torch.arange(n_images) % n_classes
    prompts = [f"a photo of a class {i}" for i in range(n_classes)]
    depth = bb.towers()["vision"]
    layer = depth // 2 if layer is None else layer
    cfg = SearchConfig(ratios=tuple(ratios), top_k=min(top_k, n_classes), lam=lam,
                       forward_batch_size=forward_batch_size)
    mod = SetarModifier()
    mod.attach(bb)
    log = SearchLog()

    class _Bar:
        def update(self, *a, **k):
            pass

        def advance(self, *a, **k):
            pass

    try:
        with torch.no_grad():
            ev = FastEvaluator(bb, images, labels, prompts, lam=lam, top_k=cfg.top_k, batch_size=cfg.batch_size,
                               prune=cfg.prune, seed=cfg.seed, modifier=mod, forward_batch_size=forward_batch_size)
            best, best_value = None, float("inf")
            for step, lay in enumerate(range(depth - 1, layer, -1)):  # the steps above, as a search runs them
                target = ("vision", "W_up", lay)
                best, best_value, (t, r) = _step(ev, step, [target], cfg, log, best, best_value, _Bar(), None)
                ev.accept(t, r, best)
                ev.forget(t)
            target = ("vision", "W_up", layer)
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with profile(activities=activities) as prof:
                best, best_value, (t, r) = _step(ev, depth - 1 - layer, [target], cfg, log, best, best_value, _Bar(),
                                                 None)
                ev.accept(t, r, best)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
            wall = time.perf_counter() - t0
    finally:
        mod.restore()
    cuda = dev.type == "cuda"
    events = prof.key_averages()

    def self_time(e) -> float:
        return (getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)) if cuda \
            else e.self_cpu_time_total

    ops = [(e.key, self_time(e) / 1e6, e.count) for e in events if not e.key.startswith("setar.")]
    total = sum(s for _, s, _ in ops) or 1.0
    cats: dict[str, float] = {}
    for name, s, _ in ops:
        cats[category(name)] = cats.get(category(name), 0.0) + s
    regions = {e.key: e.cpu_time_total / 1e6 for e in events if e.key in REGIONS}
    step_cpu = sum(e.self_cpu_time_total for e in events) / 1e6 or 1.0
    computed = [c for c in log.candidates if c.step == depth - 1 - layer and c.computed and c.removed_rank > 0]
    return {
        "backbone": backbone, "device": str(dev), "threads": torch.get_num_threads(), "n_images": n_images,
        "n_classes": n_classes, "layer": layer, "candidates": len(ratios), "candidates_computed": len(computed),
        "wall_seconds": wall, "time_basis": "CUDA kernel self time" if cuda else "CPU self time (all threads' ops)",
        "total_self_seconds": total,
        "categories": {k: {"seconds": v, "share": v / total} for k, v in sorted(cats.items(), key=lambda x: -x[1])},
        "regions": {k: {"seconds": regions.get(k, 0.0), "share_of_cpu": regions.get(k, 0.0) / step_cpu}
                    for k in REGIONS},
        "top_ops": [{"op": n, "seconds": s, "share": s / total, "calls": c, "category": category(n)}
                    for n, s, c in sorted(ops, key=lambda x: -x[1])[:top]],
    }


def markdown(report: dict) -> str:
    lines = [f"profile of one SeTAR-S step (W_up, image block {report['layer']}, {report['candidates']} ratios, "
             f"{report['candidates_computed']} computed): {report['backbone']}, {report['n_images']} images, "
             f"{report['n_classes']} classes, {report['device']}, {report['threads']} threads; "
             f"{report['time_basis']}; wall {report['wall_seconds']:.2f} s", "",
             "| category | self seconds | share |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.3f} | {100 * v['share']:.1f}% |" for k, v in report["categories"].items()]
    lines += ["", "| region (inclusive CPU time) | seconds | share |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.3f} | {100 * v['share_of_cpu']:.1f}% |" for k, v in report["regions"].items()]
    lines += ["", "| op | category | calls | self seconds | share |", "|---|---|---|---|---|"]
    lines += [f"| {o['op']} | {o['category']} | {o['calls']} | {o['seconds']:.3f} | {100 * o['share']:.1f}% |"
              for o in report["top_ops"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/benchmarks/profile_search_step.py",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="clip_vit_b16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-images", type=int, default=16)
    ap.add_argument("--n-classes", type=int, default=100)
    ap.add_argument("--layer", type=int, help="image block whose W_up step is profiled (default: the middle one)")
    ap.add_argument("--topk", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--forward-batch-size", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    report = profile_step(args.backbone, args.device, args.n_images, args.n_classes, args.layer, top_k=args.topk,
                          threads=args.threads, forward_batch_size=args.forward_batch_size)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
