"""Peak host memory of feature extraction over synthetic image splits of growing size.

Each size runs in a fresh subprocess: it builds the tiny test CLIP, resolves a file-list split of ``N`` synthetic
JPEGs, records its resident memory (``VmRSS``) as the baseline, runs
:func:`oodbench.features.extract.extract_features` into an empty feature cache (``image`` and ``local``), and
reports its peak resident memory (``VmHWM`` = ``ru_maxrss``) and the DataLoader workers' peak. The growth over
the baseline is compared with the bytes of the stored features: extraction streams shard by shard into the
cache, so the growth should stay flat in ``N`` apart from the per-image bookkeeping (file list, digests).

Usage::

    python tests/benchmarks/measure_memory.py --sizes 2000 8000 20000 [--image-size 64x48] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = "--child"


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class PeakSampler:
    """Samples ``RssAnon`` and ``RssFile`` of this process every few milliseconds; keeps the peaks (KiB).

    Anonymous memory is what the process holds; file-backed resident pages (memory-mapped cache files being
    read or written) also count in ``VmHWM`` but are page cache the kernel can drop at any time.
    """

    def __init__(self, every: float = 0.005):
        import threading

        self.every, self.anon, self.file = every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.anon = max(self.anon, rss_kib("RssAnon"))
            self.file = max(self.file, rss_kib("RssFile"))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def write_images(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``n`` small JPEGs (a few distinct noise patterns, each file slightly different) in sub-folders of 1,000."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    bases = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(16)]
    names = []
    for i in range(n):
        rel = f"{i // 1000:03d}/{i:06d}.jpg"
        path = folder / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            a = bases[i % 16].copy()
            a[0, 0] = (i % 256, (i // 256) % 256, 0)
            Image.fromarray(a).save(path, quality=85)
        names.append(rel)
    return names


def child(args) -> None:
    import torch

    from oodbench.backbones import create_backbone
    from oodbench.data.sources import FileListSource
    from oodbench.features.cache import FeatureCache
    from oodbench.features.extract import extract_features

    torch.set_num_threads(args.threads)
    names = json.loads(Path(args.names).read_text())[: args.n]
    bb = create_backbone("test_clip_tiny", "none")
    source = FileListSource("synthetic", Path(args.root), names, np.zeros(len(names), np.int64),
                            digest_dir=Path(args.cache) / "digests")
    source.fingerprint()  # file digests: part of every run, measured in the baseline
    base, base_anon = rss_kib(), rss_kib("RssAnon")
    t0 = time.perf_counter()
    with PeakSampler() as peaks:
        feats = extract_features(bb, source, {"image", "local"}, cache=FeatureCache(Path(args.cache) / "features"),
                                 batch_size=args.batch_size, num_workers=args.workers)
    seconds = time.perf_counter() - t0
    stored = sum(p.stat().st_size for p in Path(feats.meta["cache_path"]).rglob("*.npy"))
    touched = float(np.asarray(feats["local"]).sum())  # the caller reads every row (memory-mapped pages count)
    after = rss_kib()
    print(json.dumps({"n": len(names), "baseline_kib": base, "peak_kib": rss_kib("VmHWM"), "after_read_kib": after,
                      "base_anon_kib": base_anon, "peak_anon_kib": peaks.anon, "peak_file_kib": peaks.file,
                      "workers_peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "stored_bytes": stored, "seconds": round(seconds, 1), "checksum": touched}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 20000])
    ap.add_argument("--image-size", default="64x48", help="W x H of the synthetic JPEGs")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--root", help="folder for the images (kept); default a temporary one")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.image_size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "images"
        t0 = time.perf_counter()
        names = write_images(root, max(args.sizes), (w, h))
        (Path(tmp) / "names.json").write_text(json.dumps(names))
        print(f"# {max(args.sizes):,} synthetic {w}x{h} JPEGs ready in {time.perf_counter() - t0:.0f} s; "
              f"{platform.machine()}, {os.cpu_count()} CPUs, {args.workers} loader worker(s)")
        print("| images | baseline RSS MiB | peak RSS MiB | growth MiB | anonymous growth MiB | peak file-backed "
              "MiB | after reading features MiB | worker peak MiB | stored features MiB | extraction s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for n in args.sizes:
            cache = Path(tmp) / f"cache{n}"
            cmd = [sys.executable, __file__, CHILD, "--n", str(n), "--root", str(root), "--names",
                   str(Path(tmp) / "names.json"), "--cache", str(cache), "--workers", str(args.workers),
                   "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            mib = 1024.0
            print(f"| {r['n']:,} | {r['baseline_kib'] / mib:.0f} | {r['peak_kib'] / mib:.0f} | "
                  f"{(r['peak_kib'] - r['baseline_kib']) / mib:.0f} | "
                  f"{(r['peak_anon_kib'] - r['base_anon_kib']) / mib:.0f} | "
                  f"{r['peak_file_kib'] / mib:.0f} | {r['after_read_kib'] / mib:.0f} | "
                  f"{r['workers_peak_kib'] / mib:.0f} | {r['stored_bytes'] / 2**20:.1f} | {r['seconds']} |",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        p = argparse.ArgumentParser()
        for opt in ("--n", "--workers", "--threads", "--batch-size"):
            p.add_argument(opt, type=int)
        for opt in ("--root", "--names", "--cache"):
            p.add_argument(opt)
        child(p.parse_args(sys.argv[2:]))
    else:
        main()
