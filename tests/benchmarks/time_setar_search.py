"""Time the fast SeTAR search on a full-size CLIP with random pixels, and estimate the official search's time.

Paper: Li et al., SeTAR, NeurIPS 2024 (the official search took 24 min 41 s for CLIP-B/16 on ImageNet-1K on an
RTX 4090; spec §4.4). Original code: X1AOX1A/SeTAR ``searchers.py`` (per candidate: reload the model, SVD of every
accepted weight, full forward of both towers, LoCoOp loss).

Usage::

    python tests/benchmarks/time_setar_search.py --device cuda --n-images 1000 --n-classes 1000

The weights are a seeded random init (no download) and the images seeded random pixels: timing only, the
selected plan is meaningless. The official algorithm is not run in full; ``--reference-candidates N`` times N
official per-candidate evaluations (reload the pristine weights from a checkpoint file as the official code does,
and from memory; SVDs recomputed; full forward of both towers; loss) and the SVD of each weight shape, and
extrapolates over the candidates of the search just run, counting the SVDs each of them would recompute.

The report also gives the FLOPs of the work an exact search cannot avoid (``methods/setar/efficiency.py``), the rate
achieved on it, and that rate as a fraction of a large fp32 GEMM timed on the same device and threads just before
and just after the search (the faster timing is the reference).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from oodbench.methods.setar.efficiency import matmul_rate, sync
from oodbench.methods.setar.loss import locoop_loss_clip
from oodbench.methods.setar.modifier import SetarModifier, find_target
from oodbench.methods.setar.plan import Plan, PlanEntry
from oodbench.methods.setar.presets import DEFAULT_RATIOS
from oodbench.methods.setar.search import SearchConfig, search

logger = logging.getLogger("oodbench")


def _official_eval(backbone, pristine, plan, images, labels, prompts, cfg) -> float:
    """One candidate the official way; returns seconds."""
    dev = backbone.device
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        if isinstance(pristine, Path):
            backbone.model.load_state_dict(torch.load(pristine, map_location=dev))
        else:
            backbone.model.load_state_dict(pristine)
        mod = SetarModifier(cache_svd=False).apply(backbone, plan)
        parts = [backbone.compute_features(images[i:i + cfg.forward_batch_size].to(dev), {"image", "local"})
                 for i in range(0, images.shape[0], cfg.forward_batch_size)]
        text = backbone.encode_text(prompts, batch_size=cfg.text_batch_size)
        locoop_loss_clip(torch.cat([p["image"] for p in parts]), torch.cat([p["local"] for p in parts]), text,
                         backbone.logit_scale(), labels.to(dev), cfg.lam, cfg.top_k, cfg.batch_size)
        mod.restore()
    sync(dev)
    return time.perf_counter() - t0


def _gemm_per_cpu_second(device: torch.device, size: int, seconds: float) -> float:
    """FLOPs of a large fp32 GEMM per CPU second of this process (CPU devices; the wall-clock rate on a GPU)."""
    if device.type != "cpu":
        return matmul_rate(device, size or None, seconds)
    n = size or 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    reps, c0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds or reps < 3:
        torch.mm(a, b, out=out)
        reps += 1
    return 2.0 * n**3 * reps / (time.process_time() - c0)


def _svd_seconds(target, reps: int = 3) -> float:
    w = target.get().float()
    torch.linalg.svd(w, full_matrices=False)  # warm-up
    sync(w.device)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.linalg.svd(w, full_matrices=False)
    sync(w.device)
    return (time.perf_counter() - t0) / reps


def run(args: argparse.Namespace) -> dict:
    from oodbench.backbones import create_backbone
    from oodbench.runtime import resolve_device, set_float32_mode

    device = torch.device(resolve_device(args.device))
    set_float32_mode(args.tf32)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    backbone = create_backbone(args.backbone, pretrained="random", seed=args.seed).to(device)
    build_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(args.seed)
    size = backbone.image_size
    images = torch.randn(args.n_images, 3, size, size, generator=g).to(device)
    labels = (torch.arange(args.n_images) % args.n_classes).to(device)
    names = [f"class {i}" for i in range(args.n_classes)]
    try:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        if args.n_classes <= len(IMAGENET_CLASSNAMES):
            names = list(IMAGENET_CLASSNAMES[: args.n_classes])
    except ImportError:  # pragma: no cover - open_clip always ships it
        pass
    prompt = "a photo of a {}"
    cfg = SearchConfig(searcher=args.searcher, lam=args.lam, top_k=min(args.topk, args.n_classes), batch_size=args.batch_size,
                       forward_batch_size=args.forward_batch_size, text_batch_size=args.text_batch_size,
                       ratios=tuple(args.ratios))
    logger.info("fast %s search: %s on %s, %d images, %d classes", cfg.searcher, args.backbone, device, args.n_images, args.n_classes)
    gemm_before = matmul_rate(device, args.gemm_size or None, args.gemm_seconds)
    gemm_cpu_before = _gemm_per_cpu_second(device, args.gemm_size, args.gemm_seconds)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    result = search(backbone, images, labels, names, prompt, cfg)
    sync(device)
    fast_s, fast_cpu = time.perf_counter() - t0, time.process_time() - c0
    gemm_after = matmul_rate(device, args.gemm_size or None, args.gemm_seconds)
    gemm_cpu_after = _gemm_per_cpu_second(device, args.gemm_size, args.gemm_seconds)
    flops = result.log.efficiency.get("unavoidable_flops")
    gemm = max(gemm_before, gemm_after)
    cands = result.log.candidates
    by_tower = {t: sum(c.seconds for c in cands if c.tower == t) for t in ("vision", "text")}
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "tf32": args.tf32,
        "backbone": args.backbone, "n_images": args.n_images, "n_classes": args.n_classes, "searcher": cfg.searcher,
        "build_seconds": round(build_s, 2),
        "fast_seconds": round(fast_s, 3),
        "fast_seconds_by_tower": {k: round(v, 3) for k, v in by_tower.items()},
        "candidates": len(cands), "candidates_computed": result.info["candidates_computed"],
        "forward_passes": result.info["forward_passes"],
        "plan": result.plan.describe(),
        # the work an exact search cannot avoid (methods/setar/efficiency.py) against a large fp32 GEMM timed in this
        # run before and after the search (the faster of the two is the reference)
        # (over the search's own seconds, log.seconds: without the GEMM the search times for its log)
        "search_log_seconds": round(result.log.seconds, 3),
        "unavoidable_tflop": round(flops / 1e12, 4) if flops else None,
        "achieved_gflop_per_s": round(flops / result.log.seconds / 1e9, 2) if flops else None,
        "gemm_gflop_per_s": {"before": round(gemm_before / 1e9, 2), "after": round(gemm_after / 1e9, 2)},
        "matmul_fraction": round(flops / result.log.seconds / gemm, 3) if flops else None,
        # the same per CPU second of this process (user + system, all threads): on a shared machine the wall-clock
        # fraction also measures the other processes; this one does not (idle OpenMP threads that spin still count)
        "search_cpu_seconds": round(fast_cpu, 1),
        "gemm_gflop_per_cpu_s": {"before": round(gemm_cpu_before / 1e9, 2), "after": round(gemm_cpu_after / 1e9, 2)},
        "matmul_fraction_cpu_time": round(flops / fast_cpu / max(gemm_cpu_before, gemm_cpu_after), 3) if flops else None,
        "search_log_efficiency": result.log.efficiency,
    }
    if args.reference_candidates > 0:
        pristine = {k: v.detach().clone() for k, v in backbone.model.state_dict().items()}
        prompts = [prompt.format(c) for c in names]
        empty = Plan([], cfg.prune, cfg.seed)
        tmp = tempfile.TemporaryDirectory()
        ckpt = Path(tmp.name) / "pristine.pt"
        torch.save(pristine, ckpt)
        _official_eval(backbone, pristine, empty, images, labels, prompts, cfg)  # warm-up
        base = min(_official_eval(backbone, pristine, empty, images, labels, prompts, cfg) for _ in range(args.reference_candidates))
        _official_eval(backbone, ckpt, empty, images, labels, prompts, cfg)  # page cache
        base_disk = min(_official_eval(backbone, ckpt, empty, images, labels, prompts, cfg) for _ in range(args.reference_candidates))
        tmp.cleanup()
        svd = {t: _svd_seconds(find_target(backbone, t, cfg.weight_type, backbone.towers()[t] - 1)) for t in backbone.towers()}
        # SVDs the official code recomputes for each candidate: accepted entries with ratio > 0, plus the candidate
        accepted: list[PlanEntry] = []
        steps = {s.step: s for s in result.log.steps}
        svd_total = 0.0
        for step in sorted({c.step for c in cands}):
            for c in (c for c in cands if c.step == step):
                n_svd = [e.tower for e in accepted if e.ratio > 0] + ([c.tower] if c.removed_rank > 0 else [])
                svd_total += sum(svd[t] for t in n_svd)
            s = steps[step]
            accepted.append(PlanEntry(s.tower, s.weight_type, s.layer, s.best_ratio))
        full_plan = Plan([e for e in accepted if e.ratio > 0], cfg.prune, cfg.seed)
        check = _official_eval(backbone, pristine, full_plan, images, labels, prompts, cfg)
        predicted = base + sum(svd[e.tower] for e in full_plan.entries)
        estimate, estimate_disk = len(cands) * base + svd_total, len(cands) * base_disk + svd_total
        report.update({
            "reference_seconds_per_candidate_no_svd": {"reload_from_memory": round(base, 3), "reload_from_file": round(base_disk, 3)},
            "svd_seconds": {k: round(v, 4) for k, v in svd.items()},
            "reference_check_last_plan": {"measured": round(check, 3), "predicted": round(predicted, 3)},
            "reference_seconds_extrapolated": {"reload_from_memory": round(estimate, 1), "reload_from_file": round(estimate_disk, 1)},
            "speedup": {"reload_from_memory": round(estimate / fast_s, 1), "reload_from_file": round(estimate_disk / fast_s, 1)},
        })
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/benchmarks/time_setar_search.py", description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="clip_vit_b16", help="registered CLIP backbone, built with random weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-images", type=int, default=1000)
    ap.add_argument("--n-classes", type=int, default=1000)
    ap.add_argument("--searcher", default="setar-s")
    ap.add_argument("--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS))
    ap.add_argument("--lam", type=float, default=0.10)
    ap.add_argument("--topk", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=512, help="loss aggregation batch (official 512)")
    ap.add_argument("--forward-batch-size", type=int, default=250)
    ap.add_argument("--text-batch-size", type=int, default=1000)
    ap.add_argument("--reference-candidates", type=int, default=2,
                    help="official per-candidate evaluations to time for the extrapolation (0: skip)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions (default: strict fp32)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--gemm-size", type=int, default=0, help="side of the reference fp32 GEMM (0: 2048 on a CPU, 8192 on a GPU)")
    ap.add_argument("--gemm-seconds", type=float, default=2.0, help="seconds each reference GEMM timing runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from oodbench.console import setup_logging

    setup_logging(0)
    report = run(args)
    text = json.dumps(report, indent=2)
    from oodbench.console import out

    out.print(text, markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
