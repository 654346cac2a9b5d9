"""Every pending device figure in one command: one JSON + Markdown summary, a failed part recorded, the rest run.

Parts (each reuses the benchmark script that measures it, as functions):

* ``extraction`` — extraction pipeline (JPEG files, ``--decode gpu``, model, cache shards) ÷ bare forward of the
  same batches of preprocessed tensors, fp32 and bf16 (goal ≤ 1.05);
* ``decode`` — ``--decode gpu`` (nvJPEG on a GPU) against PIL: pixel difference after preprocessing and its effect on
  MCM / GL-MCM (``measure_decode_effect.measure``);
* ``main_table`` — the main table end to end: SeTAR search, vanilla and SeTAR tests with MCM + GL-MCM on synthetic
  ImageNet-size JPEGs (``time_main_table.main``), beside the official published times;
* ``search_efficiency`` — the search's fraction of the device's fp32 matmul rate (``time_setar_search.run``; the
  search log's reference is the fp32 GEMMs of the model's own shapes, best of repeats) and a profile of one step
  (``profile_search_step.profile_step``);
* ``multi_device_search`` — the image-divided search on 1 vs N devices (``time_divided_search.measure``; NCCL, one
  GPU per process) when several GPUs are visible; on a CPU 1 vs 2 gloo processes (a check of the path, not a
  speed); skipped on one GPU.

Sizes (``--scale``): ``tiny`` (test-size models, a few images: the CPU check of the default test suite), ``small``
(CLIP-B/16 with a few images: the path on a CPU in minutes), ``full`` (the device figures). At ``full`` the command
must finish in ≤ 8 min on one H100 including model creation. Estimate, from FLOP counts and the H100 rates already
measured here (CLIP-B/16 forward 35 GFLOP per image, 1,085 img/s fp32 model-only ≈ 38 TFLOP/s, 5,745 img/s bf16;
the search's unavoidable work ≈ 2.3 PFLOP at ≈ 42 TFLOP/s for 1,000 images × 1,000 classes × 216 candidates; CPU
JPEG decoding ≈ 1,000 img/s with 14 workers; writing synthetic JPEGs ≈ 1,000/s on 16 cores):

* extraction: 1,536 JPEGs fp32 (bare 3 × 1.4 s, pipeline 2 × ~1.5 s) + 3,072 bf16 (3 × 0.5 s, 2 × ~1 s) + writing
  4.6k files + 2 model creations ≈ 30 s;
* decode: the digits benchmark (2,753 images, a 32-px model) as JPEGs, two extractions ≈ 20 s;
* main table: the full search (1,000 val images × 1,000 classes, 216 candidates: ≈ 2.3 PFLOP ≈ 55 s) and both tests
  on 5,000 ID + 4 × 1,000 OOD images (9,000 × 35 GFLOP × 2 tests ≈ 0.63 PFLOP, bound by the pipeline's ~1,000 img/s
  ≈ 18 s; GL-MCM scores on the CPU, three scorings of 9,000 images × 196 patches × 1,000 classes ≈ 30–40 s on 16
  cores), writing 10,000 JPEGs ≈ 12 s, hashing them ≈ 3 s: ≈ 2 min; the full-size test time (85,640 images) is
  extrapolated per image from it;
* search efficiency: 500 images × 1,000 classes (≈ 1.15 PFLOP ≈ 28 s) plus the GEMM references (≈ 6 s), and one
  profiled step on 128 images (≈ 10 s);
* 1 vs N devices (several GPUs only): 2 searches of 1,000 × 1,000 ≈ 55 s + 55 / N s.

≈ 4.5–5 min on one H100. Each part has a time limit (``PART_LIMITS``, about twice its estimate at ``full``) after
which it is stopped and recorded as failed, so that one slow part cannot use up the device window.

Usage::

    python tests/benchmarks/device_check.py --scale full --device cuda --out device-check
    python tests/benchmarks/device_check.py --scale tiny --device cpu --out /tmp/check     # the CPU check
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

PARTS = ("extraction", "decode", "main_table", "search_efficiency", "multi_device_search")
#: seconds each part may take before it is stopped and recorded as failed (full: about twice the estimate)
PART_LIMITS = {"tiny": dict.fromkeys(PARTS, 120), "small": dict.fromkeys(PARTS, 900),
               "full": {"extraction": 90, "decode": 60, "main_table": 300, "search_efficiency": 120,
                        "multi_device_search": 240}}

SIZES = {
    "tiny": {"backbone": "test_clip_tiny", "extract": {"fp32": 8, "bf16": 8}, "batch": 4, "decode_limit": 8,
             "main": ["--backbone", "test_clip_tiny", "--n-classes", "3", "--n-val", "4", "--n-test", "6",
                      "--n-ood", "2", "--ratios", "0", "0.5", "--batch-size", "4", "--workers", "0"],
             "search": {"n_images": 8, "n_classes": 4, "forward_batch_size": 8, "text_batch_size": 8,
                        "ratios": [0.0, 0.25, 0.5], "gemm_size": 256, "gemm_seconds": 0.1},
             "profile": {"n_images": 4, "n_classes": 3}, "procs_cpu": [1, 2],
             "divided": {"backbone": "test_clip_tiny", "n_images": 12, "n_classes": 4, "ratios": [0.0, 0.5]}},
    "small": {"backbone": "clip_vit_b16", "extract": {"fp32": 16, "bf16": 4}, "batch": 4, "decode_limit": 200,
              "main": ["--scale", "small"],
              "search": {"n_images": 4, "n_classes": 10, "forward_batch_size": 4, "text_batch_size": 10,
                         "ratios": [0.0, 0.2, 0.4], "gemm_size": 1024, "gemm_seconds": 1.0},
              "profile": {"n_images": 4, "n_classes": 10}, "procs_cpu": [1, 2],
              "divided": {"backbone": "digits_clip", "n_images": 64, "n_classes": 10,
                          "ratios": [0.0, 0.1, 0.2, 0.3, 0.4]}},
    "full": {"backbone": "clip_vit_b16", "extract": {"fp32": 1536, "bf16": 3072}, "batch": 256, "decode_limit": None,
             "main": ["--scale", "full", "--n-test", "5000", "--n-ood", "1000", "--batch-size", "256"],
             "search": {"n_images": 500, "n_classes": 1000, "forward_batch_size": 250, "text_batch_size": 1000,
                        "ratios": None, "gemm_size": 8192, "gemm_seconds": 1.0},
             "profile": {"n_images": 128, "n_classes": 1000}, "procs_cpu": [1, 2],
             "divided": {"backbone": "clip_vit_b16", "n_images": 1000, "n_classes": 1000, "ratios": None}},
}
FULL_TEST_IMAGES = 50_000 + 35_640  # the main table's ID test + OOD images at full size


class PartTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    """Raise :class:`PartTimeout` in this (main) thread after ``seconds`` (SIGALRM; no-op where unavailable)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fire(signum, frame):
        raise PartTimeout(f"stopped after the part's limit of {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def environment(device: str) -> dict:
    """What a stored run records (:func:`oodbench.provenance.provenance`: versions, commit, CPU, threads, GPU), the
    packages by their import names, and the CUDA, cuDNN, NCCL and driver versions."""
    import torch

    from oodbench.provenance import PACKAGES, provenance

    env = provenance(device)
    env.update({PACKAGES[p]: v for p, v in env.pop("packages").items()}, cuda_available=torch.cuda.is_available())
    for mod in ("torchvision", "PIL"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001 - a missing library is a fact to record
            env[mod] = f"unavailable ({type(exc).__name__})"
    if torch.cuda.is_available():
        try:
            nccl = torch.cuda.nccl.version()
            nccl = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
        except Exception as exc:  # noqa: BLE001
            nccl = f"unavailable ({type(exc).__name__})"
        env.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), nccl=nccl,
                   gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                   gpu_memory_gib=[round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)
                                   for i in range(torch.cuda.device_count())])
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            env["nvidia_smi"] = smi.stdout.strip().splitlines()
            env["driver"] = env["nvidia_smi"][0].split(",")[0].strip() if env["nvidia_smi"] else None
        except Exception as exc:  # noqa: BLE001
            env["driver"] = f"unavailable ({type(exc).__name__})"
    return env


# ------------------------------------------------------------------------------------------------------ parts
def part_extraction(scale: str, device: str, work: Path) -> dict:
    """Pipeline ÷ bare forward, fp32 and bf16, ``--decode gpu``."""
    import torch

    from oodbench.backbones import create_backbone
    from oodbench.features.cache import FeatureCache
    from oodbench.features.extract import extract_features
    from oodbench.features.runner import PRECISIONS
    from oodbench.methods.setar.efficiency import sync
    from test_extraction_bench import _jpegs

    sz = SIZES[scale]
    dev = torch.device(device)
    out = {}
    for precision, n in sz["extract"].items():
        t0 = time.perf_counter()
        torch.manual_seed(0)
        bb = create_backbone(sz["backbone"], pretrained="random").to(dev)
        build = time.perf_counter() - t0
        source = _jpegs(work / f"extract-{precision}", n)
        tf = bb.preprocess()
        batch = sz["batch"]
        batches = [torch.stack([tf(source.load(i)) for i in range(s, min(s + batch, n))]) for s in range(0, n, batch)]
        dtype = PRECISIONS[precision]

        def bare():
            with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=dtype or torch.float32,
                                                        enabled=dtype is not None):
                for x in batches:
                    bb.compute_features(x.to(dev, non_blocking=True), {"image"})
            sync(dev)

        bare()
        bare_s = []
        for _ in range(3):
            t = time.perf_counter()
            bare()
            bare_s.append(time.perf_counter() - t)
        pipe_s = []
        for r in range(2):
            t = time.perf_counter()
            extract_features(bb, source, {"image"}, cache=FeatureCache(work / f"cache-{precision}-{r}"),
                             batch_size=batch, precision=precision, device=dev, decode="gpu")
            sync(dev)
            pipe_s.append(time.perf_counter() - t)
        out[precision] = {"images": n, "batch": batch, "bare_seconds": min(bare_s), "pipeline_seconds": min(pipe_s),
                          "ratio": min(pipe_s) / min(bare_s), "images_per_s_bare": n / min(bare_s),
                          "images_per_s_pipeline": n / min(pipe_s), "model_seconds": build, "goal": 1.05}
        del bb, batches
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return out


def part_decode(scale: str, device: str, work: Path) -> dict:
    from measure_decode_effect import measure

    return measure(device, limit=SIZES[scale]["decode_limit"])


def part_main_table(scale: str, device: str, work: Path) -> dict:
    import time_main_table

    argv = [*SIZES[scale]["main"], "--device", device, "--work", str(work / "main"),
            "--json", str(work / "main.json")]
    figures = time_main_table.main(argv)
    counts = figures["counts"]
    n_test = counts["test"] + sum(counts["ood"].values())
    sec = figures["seconds"]
    figures["test_images"] = n_test
    figures["full_size_test_seconds_extrapolated"] = {
        k: sec[k] / n_test * FULL_TEST_IMAGES for k in ("vanilla", "setar") if k in sec}
    return figures


def part_search_efficiency(scale: str, device: str, work: Path) -> dict:
    import time_setar_search
    from oodbench.methods.setar.presets import DEFAULT_RATIOS
    from profile_search_step import profile_step

    sz = SIZES[scale]
    s = sz["search"]
    args = SimpleNamespace(backbone=sz["backbone"], device=device, n_images=s["n_images"], n_classes=s["n_classes"],
                           searcher="setar-s", ratios=list(s["ratios"] or DEFAULT_RATIOS), lam=0.1,
                           topk=min(300, s["n_classes"]), batch_size=512, forward_batch_size=s["forward_batch_size"],
                           text_batch_size=s["text_batch_size"], reference_candidates=0, tf32=False, threads=0,
                           gemm_size=s["gemm_size"], gemm_seconds=s["gemm_seconds"], seed=0, json=None)
    report = time_setar_search.run(args)
    eff = report["search_log_efficiency"]
    p = sz["profile"]
    report["profile"] = profile_step(sz["backbone"], device, p["n_images"], p["n_classes"],
                                     top_k=min(100, p["n_classes"]), top=12)
    report["summary"] = {"matmul_fraction_square_gemm": report["matmul_fraction"],
                         "matmul_fraction_model_gemms": eff.get("matmul_fraction"),
                         "model_gemm_gflop_per_s": (eff.get("matmul_flops_per_s") or 0) / 1e9, "goal": 0.80}
    return report


def part_multi_device_search(scale: str, device: str, work: Path) -> dict:
    import torch

    import time_divided_search

    sz = SIZES[scale]
    if device.startswith("cuda"):
        n = torch.cuda.device_count()
        if n < 2:
            return {"skipped": f"{n} CUDA device visible: 1 vs N needs at least 2"}
        procs = [1, n]
    else:
        procs = sz["procs_cpu"]
    d = sz["divided"]
    args = time_divided_search.parser().parse_args([
        "--backbone", d["backbone"], "--device", "cuda" if device.startswith("cuda") else "cpu",
        "--n-images", str(d["n_images"]), "--n-classes", str(d["n_classes"]), "--threads", "1",
        "--procs", *map(str, procs), *(["--ratios", *map(str, d["ratios"])] if d["ratios"] else
                                       ["--ratios", "0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.35", "0.4"]),
        "--forward-batch-size", "250"])
    return time_divided_search.measure(args)


# ---------------------------------------------------------------------------------------------------- summary
def _fmt(x, digits=3):
    return "—" if x is None else (f"{x:.{digits}g}" if isinstance(x, float) else str(x))


def markdown(summary: dict) -> str:
    env = summary["environment"]
    lines = [f"# Device check ({summary['scale']}, {summary['device']})", "",
             f"- device: {', '.join(env.get('gpus', [])) or env['cpu']} ({env['cpu_count']} CPU cores); driver "
             f"{env.get('driver', '—')}; CUDA {env.get('cuda', '—')}; cuDNN {env.get('cudnn', '—')}; NCCL "
             f"{env.get('nccl', '—')}",
             f"- torch {env['torch']}, torchvision {env.get('torchvision')}, open_clip {env.get('open_clip')}, numpy "
             f"{env['numpy']}, Pillow {env.get('PIL')}, Python {env['python']}, oodbench {env.get('oodbench')}",
             f"- wall time {summary['seconds']:.1f} s; started {summary['started']}", "",
             "| part | status | seconds | key figures |", "|---|---|---|---|"]
    for name, p in summary["parts"].items():
        lines.append(f"| {name} | {p['status']} | {p.get('seconds', 0):.1f} | {key_figures(name, p)} |")
    for name, p in summary["parts"].items():
        if p["status"] == "failed":
            lines += ["", f"**{name} failed**: {p['error']}"]
    prof = summary["parts"].get("search_efficiency", {}).get("result", {}).get("profile")
    if prof:
        from profile_search_step import markdown as profile_md

        lines += ["", "## Profile of one search step", "", profile_md(prof)]
    return "\n".join(lines) + "\n"


def key_figures(name: str, p: dict) -> str:
    r = p.get("result")
    if p["status"] != "ok" or not r:
        return p.get("error", "")[:200]
    if name == "extraction":
        return "; ".join(f"{k}: pipeline ÷ bare {v['ratio']:.3f} ({v['images_per_s_pipeline']:.0f} vs "
                         f"{v['images_per_s_bare']:.0f} img/s, {v['images']} images)" for k, v in r.items())
    if name == "decode":
        worst = max(r["scores"], key=lambda x: abs(x["auroc_gpu"] - x["auroc_pil"]))
        fpr = max(abs(x["fpr95_gpu"] - x["fpr95_pil"]) for x in r["scores"])
        return (f"pixels max {r['pixels']['max_levels']:.1f} levels, mean {r['pixels']['mean_levels']:.3f}; "
                f"largest AUROC move {abs(worst['auroc_gpu'] - worst['auroc_pil']):.2f} points ({worst['score']}, "
                f"{worst['ood']}); FPR95 moves ≤ {fpr:.2f}")
    if name == "main_table":
        s = r["seconds"]
        ext = r.get("full_size_test_seconds_extrapolated", {})
        return (f"search {s.get('search', 0):.1f} s (val {r['counts']['val']}); "
                f"vanilla test {s.get('vanilla', 0):.1f} s "
                f"and SeTAR test {s.get('setar', 0):.1f} s on {r['test_images']} images (full size extrapolated "
                f"{ext.get('vanilla', 0):.0f} s / {ext.get('setar', 0):.0f} s); official 1481 s + 263 s per model")
    if name == "search_efficiency":
        s = r["summary"]
        return (f"search {r['fast_seconds']:.1f} s, {r['achieved_gflop_per_s']} GFLOP/s; fraction of the model's "
                f"GEMMs {_fmt(s['matmul_fraction_model_gemms'])} ({s['model_gemm_gflop_per_s']:.0f} GFLOP/s), of a "
                f"square GEMM {_fmt(s['matmul_fraction_square_gemm'])}")
    if name == "multi_device_search":
        if "skipped" in r:
            return r["skipped"]
        return "; ".join(f"{w['procs']} proc: {w['search_seconds']:.1f} s ({w['speedup']:.2f}x), largest rank "
                         f"{w['work_share_of_largest_rank']:.3f} of the work, same plan {w['same_plan']}"
                         for w in r["worlds"])
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/benchmarks/device_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SIZES), default="full")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    ap.add_argument("--out", type=Path, required=True, help="folder for device_check.json and device_check.md")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)

    import torch

    from oodbench.runtime import resolve_device

    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = {"scale": args.scale, "device": device, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "argv": sys.argv[1:] if argv is None else list(argv), "environment": environment(device),
               "parts": {}, "seconds": 0.0}

    def write() -> None:
        summary["seconds"] = time.perf_counter() - start
        (args.out / "device_check.json").write_text(json.dumps(summary, indent=2, default=str))
        (args.out / "device_check.md").write_text(markdown(summary))

    gpus = ", ".join(summary["environment"].get("gpus", [])) or "CPU"
    print(f"device check: scale {args.scale} on {device} ({gpus}); parts {', '.join(args.parts)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in args.parts:
            print(f"[{time.perf_counter() - start:6.1f} s] {name} ...", flush=True)
            t0 = time.perf_counter()
            entry: dict = {"status": "running"}
            summary["parts"][name] = entry
            write()
            try:
                with time_limit(PART_LIMITS[args.scale][name]):
                    entry["result"] = globals()[f"part_{name}"](args.scale, device, work / name)
                entry["status"] = "ok"
            except BaseException as exc:  # noqa: BLE001 - a failed part is recorded and the others run
                if isinstance(exc, KeyboardInterrupt):
                    raise
                entry.update(status="failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
                             traceback=traceback.format_exc()[-3000:])
            entry["seconds"] = time.perf_counter() - t0
            if device.startswith("cuda"):
                entry["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.empty_cache()
            print(f"[{time.perf_counter() - start:6.1f} s] {name}: {entry['status']} in {entry['seconds']:.1f} s — "
                  f"{key_figures(name, entry)}", flush=True)
            write()
    write()
    print(f"device check done in {summary['seconds']:.1f} s: {args.out / 'device_check.json'}, "
          f"{args.out / 'device_check.md'}", flush=True)
    return 0 if all(p["status"] == "ok" for p in summary["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
