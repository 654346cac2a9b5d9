"""Each process's work and the wall time of the image-divided SeTAR search with 1, 2, 4, ... processes.

The search under ``torchrun`` divides the validation images (and the class prompts) over the processes
(:mod:`oodbench.methods.setar.search`): every process runs every candidate on its share. This script starts the
same search in worlds of several sizes (processes started the way torchrun starts them: its environment variables;
gloo on the CPU with ``--threads`` threads each, NCCL with one GPU each on CUDA) and reports, per world: each rank's
images, its unavoidable FLOPs (``methods/setar/efficiency.py``: the work of its share), its forward passes, its
search seconds, the bytes its tensor collectives moved, and whether the plan and every candidate's loss equal the
1-process search (losses to 1e-6).

Usage::

    python tests/benchmarks/time_divided_search.py --procs 1 2 4 --threads 1            # CPU, gloo
    python tests/benchmarks/time_divided_search.py --device cuda --backbone clip_vit_b16 --n-images 1000 \\
        --n-classes 1000 --procs 1 8                                                       # GPUs, NCCL

Random inputs (seeded pixels; random weights for every backbone but ``digits_clip``): timing and work only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs(args):
    import torch

    from oodbench.backbones import create_backbone

    pretrained = None if args.backbone == "digits_clip" else "random"
    bb = create_backbone(args.backbone, pretrained=pretrained, **({"seed": args.seed} if pretrained else {}))
    g = torch.Generator().manual_seed(args.seed)
    size = bb.image_size
    images = torch.randn(args.n_images, 3, size, size, generator=g)
    labels = torch.arange(args.n_images) % args.n_classes
    names = [f"class {i}" for i in range(args.n_classes)]
    return bb, images, labels, names


def _rank(rank: int, world: int, port: int, args, out: str) -> None:
    """One process of a world: the search on its share; writes ``out/<rank>.json``."""
    import torch

    torch.set_num_threads(args.threads)
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from oodbench import distributed
    from oodbench.methods.setar.efficiency import sync
    from oodbench.methods.setar.search import SearchConfig, search

    with distributed.session(args.device) as (w, device):
        bb, images, labels, names = _inputs(args)
        bb = bb.to(device)
        cfg = SearchConfig(searcher=args.searcher, ratios=tuple(args.ratios), top_k=min(args.topk, args.n_classes),
                           lam=args.lam, batch_size=args.batch_size, forward_batch_size=args.forward_batch_size)
        distributed.barrier()
        distributed.reset_traffic()
        t0 = time.perf_counter()
        result = search(bb, images.to(device), labels.to(device), names, config=cfg)
        sync(torch.device(device))
        seconds = time.perf_counter() - t0
        eff = result.log.efficiency
        flops = eff["per_rank_flops"][w.rank] if w.active else eff["unavoidable_flops"]
        Path(out, f"{rank}.json").write_text(json.dumps({
            "rank": w.rank, "images": result.info["image_shares"][w.rank], "flops": flops,
            "forward_passes": result.info["forward_passes"], "seconds": seconds,
            "search_log_seconds": result.log.seconds, "matmul_fraction": eff.get("matmul_fraction"),
            "traffic_bytes": distributed.traffic(), "plan": result.plan.describe(),
            "losses": [c.locoop_loss for c in result.log.candidates],
        }))


def run_world(procs: int, args) -> dict:
    """The search in ``procs`` processes; returns the per-rank records and the world's wall time (slowest rank)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        if procs == 1:  # in this process (no process group); its threads and environment put back after
            import torch

            threads, saved = torch.get_num_threads(), dict(os.environ)
            try:
                for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
                    os.environ.pop(var, None)
                _rank(0, 1, 0, args, out)
            finally:
                torch.set_num_threads(threads)
                os.environ.clear()
                os.environ.update(saved)
        else:
            mp.spawn(_rank, args=(procs, _free_port(), args, out), nprocs=procs, join=True)
        total = time.perf_counter() - t0
        ranks = [json.loads(Path(out, f"{r}.json").read_text()) for r in range(procs)]
    return {"procs": procs, "search_seconds": max(r["seconds"] for r in ranks), "process_seconds": total,
            "ranks": ranks}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python tests/benchmarks/time_divided_search.py",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="digits_clip", help="a registered CLIP backbone")
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    ap.add_argument("--n-images", type=int, default=256)
    ap.add_argument("--n-classes", type=int, default=10)
    ap.add_argument("--searcher", default="setar-s")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    ap.add_argument("--topk", type=int, default=3)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=512, help="loss aggregation batch (official 512)")
    ap.add_argument("--forward-batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the report here")
    return ap


def measure(args) -> dict:
    """Every world of ``args.procs``; the per-rank work, wall times, speed-ups and agreement with 1 process."""
    worlds = [run_world(p, args) for p in args.procs]
    base = worlds[0]
    ref = base["ranks"][0]
    for w in worlds:
        w["speedup"] = base["search_seconds"] / w["search_seconds"]
        w["work_share_of_largest_rank"] = max(r["flops"] for r in w["ranks"]) / sum(r["flops"] for r in w["ranks"])
        w["same_plan"] = all(r["plan"] == ref["plan"] for r in w["ranks"])
        w["max_loss_diff"] = max(abs(a - b) for r in w["ranks"] for a, b in zip(r["losses"], ref["losses"]))
        w["total_flops"] = sum(r["flops"] for r in w["ranks"])
    return {"backbone": args.backbone, "device": args.device, "threads": args.threads, "n_images": args.n_images,
            "n_classes": args.n_classes, "ratios": args.ratios, "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "worlds": worlds}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    report = measure(args)
    print(f"# divided search: {args.backbone}, {args.n_images} images, {args.n_classes} classes, {args.device}, "
          f"{args.threads} thread(s) per process, {report['cores']} cores")
    print("| processes | per-rank images | per-rank GFLOP | forward passes per rank | search wall | speed-up | "
          "largest rank's share | same plan | max loss diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in report["worlds"]:
        r = w["ranks"]
        images = " / ".join(str(x["images"]) for x in r)
        gflop = " / ".join(f"{x['flops'] / 1e9:.1f}" for x in r)
        print(f"| {w['procs']} | {images} | {gflop} | {r[0]['forward_passes']} | "
              f"{w['search_seconds']:.1f} s | {w['speedup']:.2f}x | {w['work_share_of_largest_rank']:.3f} | "
              f"{w['same_plan']} | {w['max_loss_diff']:.1e} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
