"""Time the paper's main table end to end: SeTAR search, then vanilla and SeTAR test with MCM and GL-MCM.

Paper: Li et al., SeTAR, NeurIPS 2024. The official code's published times for CLIP-B/16 on ImageNet-1K on an
RTX 4090: search 24 min 41 s, test 4 min 23 s per model. This script runs the same work through the public API
(:func:`oodbench.search`, :func:`oodbench.run`) on an ad-hoc folder benchmark of synthetic JPEGs of ImageNet
sizes, and prints the times beside those figures.

Work at ``--scale full`` (SeTAR's ImageNet-1K protocol): 1,000 ID val images (one per class) for the search;
50,000 ID test images of 1,000 classes and 35,640 OOD images (iNaturalist 10,000, SUN 10,000, Places 10,000,
Texture 5,640) for each test. ``--scale small`` runs the same path on a few images (a check that it works, e.g.
on a CPU); every count can be overridden.

The weights are a seeded random init of the backbone (``--pretrained none``; no download) and the images are
synthetic (smooth colour patterns with mild noise, quality 90, sizes drawn from common ImageNet sizes), so the
times are meaningful and the scores are not. Phases timed separately:

* writing the images (not part of the comparison);
* the data identity: SHA-256 of every file (paid once; remembered by the cache across runs);
* the search on the val images;
* the vanilla test (extraction of every test image, MCM and GL-MCM, results stored);
* the SeTAR test (the searched plan applied, extraction, MCM and GL-MCM; the vanilla features come from the
  cache, so this call's time is SeTAR's extraction plus a re-scoring of vanilla).

Usage::

    python tests/benchmarks/time_main_table.py --scale full --device cuda [--root /scratch/synthetic]
    python tests/benchmarks/time_main_table.py --scale small --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SCALES = {
    "full": {"classes": 1000, "val": 1000, "test": 50000,
             "ood": {"iNaturalist": 10000, "SUN": 10000, "Places": 10000, "Texture": 5640}, "ratios": None},
    "small": {"classes": 10, "val": 10, "test": 20,
              "ood": {"iNaturalist": 5, "SUN": 5, "Places": 5, "Texture": 5}, "ratios": [0.0, 0.2, 0.4]},
}
# Common ImageNet image sizes (W, H) and how often they are drawn; other draws take a random size.
SIZES = [((500, 375), 0.40), ((375, 500), 0.12), ((500, 333), 0.12), ((333, 500), 0.05), ((500, 500), 0.06),
         ((640, 480), 0.05), ((500, 400), 0.04)]
OFFICIAL = {"search": 24 * 60 + 41, "test": 4 * 60 + 23}


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    m, s = divmod(seconds, 60)
    return f"{int(m)} min {s:04.1f} s" if m else f"{s:.1f} s"


def _write_one(job) -> int:
    """Write one synthetic JPEG; returns its size in bytes."""
    from PIL import Image

    path, seed = job
    path = Path(path)
    if path.exists():
        return path.stat().st_size
    rng = np.random.default_rng(seed)
    r = rng.random()
    acc = 0.0
    for (w, h), p in SIZES:
        acc += p
        if r < acc:
            break
    else:
        w, h = (int(v) for v in rng.integers(200, 801, size=2))
    # smooth colour waves plus mild noise: compresses like a photo (tens of kB), unlike pure noise
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    f = rng.uniform(2, 12, size=(3, 2)).astype(np.float32)
    ph = rng.uniform(0, 6.3, size=3).astype(np.float32)
    chans = [128 + 90 * np.sin(f[c, 0] * 6.3 * xx + ph[c]) * np.cos(f[c, 1] * 6.3 * yy) for c in range(3)]
    a = np.stack(chans, -1) + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(tmp, "JPEG", quality=90)
    os.replace(tmp, path)
    return path.stat().st_size


def write_images(root: Path, counts: dict, n_classes: int, seed: int) -> tuple[dict, float]:
    """Folders ``val/`` and ``test/`` (class sub-folders ``c0000``...) and ``ood/<set>/``; returns paths, MB."""
    jobs, folders = [], {}
    k = 0

    def add(folder: Path, n: int, by_class: bool):
        nonlocal k
        for i in range(n):
            sub = folder / f"c{i % n_classes:04d}" if by_class else folder
            jobs.append((str(sub / f"{i:06d}.jpg"), seed * 10_000_019 + k))
            k += 1

    folders["val"] = root / "val"
    add(folders["val"], counts["val"], True)
    folders["test"] = root / "test"
    add(folders["test"], counts["test"], True)
    for name, n in counts["ood"].items():
        folders[name] = root / "ood" / name
        add(folders[name], n, False)
    for c in range(n_classes):  # every class folder exists, even with fewer images than classes
        for split in ("val", "test"):
            (folders[split] / f"c{c:04d}").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sizes = list(pool.map(_write_one, jobs, chunksize=256))
    return folders, sum(sizes) / max(1, len(sizes)) / 1e3


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="small")
    ap.add_argument("--n-classes", type=int)
    ap.add_argument("--n-val", type=int)
    ap.add_argument("--n-test", type=int)
    ap.add_argument("--n-ood", type=int, help="images per OOD set (default: the scale's)")
    ap.add_argument("--backbone", default="clip_vit_b16")
    ap.add_argument("--pretrained", default="none", help="weights; 'none' = seeded random init (timing only)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--decode", default="pil", help="image decoding of the tests: pil (official) or gpu (nvJPEG)")
    ap.add_argument("--ratios", type=float, nargs="+", help="SeTAR candidate ratios (default: the scale's / "
                    "the preset's)")
    ap.add_argument("--root", help="folder for the synthetic images (kept and reused); default a temporary one")
    ap.add_argument("--work", help="folder for the cache and results (default a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    scale = SCALES[args.scale]
    counts = {"val": args.n_val or scale["val"], "test": args.n_test or scale["test"],
              "ood": {k: (args.n_ood or v) for k, v in scale["ood"].items()}}
    n_classes = args.n_classes or scale["classes"]
    ratios = args.ratios or scale["ratios"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        os.environ["OODBENCH_CACHE_DIR"] = str(work / "cache")  # file digests and plans land there too
        root = Path(args.root) if args.root else work / "images"

        import torch

        import oodbench
        from oodbench.backbones import create_backbone
        from oodbench.data.adhoc import adhoc_benchmark
        from oodbench.data.classnames import resolve_classnames
        from oodbench.data.resolve import resolve
        from oodbench.runtime import resolve_device

        device = resolve_device(args.device)
        times: dict[str, float] = {}
        t = time.perf_counter()
        folders, kb = write_images(root, counts, n_classes, args.seed)
        times["write"] = time.perf_counter() - t
        names = resolve_classnames("imagenet1k")[0][:n_classes]
        classes = work / "classes.txt"
        classes.write_text("\n".join(names) + "\n")
        spec = adhoc_benchmark(folders["test"], classes, {k: folders[k] for k in counts["ood"]},
                               id_val=folders["val"], name="main-table-timing", classes_by_position=True)

        t = time.perf_counter()
        resolved = resolve(spec, None)
        for split in resolved.splits():
            split.source.fingerprint()
        times["identity"] = time.perf_counter() - t
        print(f"images written: {fmt(times['write'])}; data identity: {fmt(times['identity'])}", flush=True)

        backbone = create_backbone(args.backbone, args.pretrained)
        # the same search options (seed included) for the search and the SeTAR run: the run finds the plan cached
        options = {"seed": args.seed, **({"ratios": ratios} if ratios else {})}
        n_total = counts["test"] + sum(counts["ood"].values())
        print(f"# {args.backbone} ({args.pretrained}) on {device}, {args.precision}, batch {args.batch_size}, "
              f"decode {args.decode}; "
              f"{n_classes} classes; val {counts['val']:,}, test {counts['test']:,} ID + "
              f"{sum(counts['ood'].values()):,} OOD ({', '.join(f'{k} {v:,}' for k, v in counts['ood'].items())}); "
              f"JPEGs {kb:.0f} kB on average", flush=True)

        common = dict(device=device, cache_dir=work / "cache")
        t = time.perf_counter()
        result = oodbench.search(backbone, resolved, **common, **options)  # options["seed"]: the run seed
        times["search"] = time.perf_counter() - t
        print(f"search: {fmt(times['search'])}", flush=True)
        run = dict(post=["mcm", "glmcm"], precision=args.precision, batch_size=args.batch_size,
                   num_workers=args.workers, seed=args.seed, results_root=work / "runs", quiet=True, **common,
                   **({"decode": args.decode} if args.decode != "pil" else {}))
        t = time.perf_counter()
        vanilla = oodbench.run(backbone, resolved, **run)
        times["vanilla"] = time.perf_counter() - t
        print(f"vanilla test: {fmt(times['vanilla'])}", flush=True)
        t = time.perf_counter()
        setar = oodbench.run(backbone, resolved, method="setar", method_options={"setar": options}, **run)
        times["setar"] = time.perf_counter() - t
        used = {r.record.plan.get("hash") for r in setar if r.method == "setar"}
        if used != {result.plan.hash()}:
            raise SystemExit(f"the SeTAR run used plan(s) {used}, not the searched {result.plan.hash()}")

    dev_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else \
        f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    plan_steps = f"{len(result.plan.active)} active of {len(result.plan.entries)}"
    rows = [
        ("write synthetic JPEGs (not compared)", times["write"], None),
        (f"data identity: SHA-256 of {n_total + counts['val']:,} files (once)", times["identity"], None),
        (f"SeTAR search on {counts['val']:,} val images", times["search"], OFFICIAL["search"]),
        (f"vanilla test: {n_total:,} images, MCM + GL-MCM", times["vanilla"], OFFICIAL["test"]),
        (f"SeTAR test: {n_total:,} images, MCM + GL-MCM (plan from the search, vanilla re-scored from cache)",
         times["setar"],
         OFFICIAL["test"]),
    ]
    print(f"\n{dev_name}; torch {torch.__version__}; oodbench {oodbench.__version__}")
    print("| phase | oodbench | official (RTX 4090, published, full scale) |")
    print("|---|---|---|")
    for label, sec, ref in rows:
        print(f"| {label} | {fmt(sec)} | {fmt(ref)} |")
    done = {(r.method, r.postprocessor) for r in [*vanilla, *setar]}
    print(f"\nstored runs: {sorted(done)}; plan entries: {plan_steps}")
    figures = {"device": dev_name, "counts": counts, "classes": n_classes, "backbone": args.backbone,
               "precision": args.precision, "batch_size": args.batch_size, "ratios": ratios, "decode": args.decode,
               "seconds": {k: round(v, 2) for k, v in times.items()}, "official_seconds": OFFICIAL,
               "argv": sys.argv[1:]}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
