"""Extraction pipeline (files -> DataLoader workers -> preprocessing -> model -> cache shards) against a bare model
forward over the same batches of already-preprocessed tensors. Goal: pipeline <= 1.10x bare forward.

Run with ``pytest -m benchmark tests/benchmarks/test_extraction_bench.py --benchmark-enable``. Environment knobs
(for a GPU machine): ``OODBENCH_BENCH_DEVICE`` (default cpu), ``OODBENCH_BENCH_IMAGES`` (default 32),
``OODBENCH_BENCH_BATCH`` (default 16), ``OODBENCH_BENCH_WORKERS`` (default: the extractor's choice).
"""

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.backbones import create_backbone
from oodbench.data.readers import read_imagefolder
from oodbench.features.cache import FeatureCache
from oodbench.features.extract import extract_features

pytestmark = pytest.mark.benchmark

DEVICE = os.environ.get("OODBENCH_BENCH_DEVICE", "cpu")
N_IMAGES = int(os.environ.get("OODBENCH_BENCH_IMAGES", "32"))
BATCH = int(os.environ.get("OODBENCH_BENCH_BATCH", "16"))
WORKERS = int(os.environ["OODBENCH_BENCH_WORKERS"]) if os.environ.get("OODBENCH_BENCH_WORKERS") else None


def _jpegs(folder, n, seed=0):
    """ImageNet-like JPEG files: smooth random content, 400x340 px, quality 90 (about 30-60 kB each)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, (17, 20, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((400, 340), Image.BICUBIC)
        noise = rng.integers(-12, 13, (340, 400, 3))
        Image.fromarray(np.clip(np.asarray(img, int) + noise, 0, 255).astype(np.uint8)).save(
            folder / "images" / f"{i:05d}.jpg", quality=90)
    return read_imagefolder(folder, "bench", ood=True)


def _sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def test_extraction_pipeline_vs_bare_forward(benchmark, tmp_path):
    torch.manual_seed(0)
    backbone = create_backbone("clip_vit_b16", pretrained="random").to(DEVICE)
    source = _jpegs(tmp_path / "data", N_IMAGES)
    tf = backbone.preprocess()
    batches = [torch.stack([tf(source.load(i)) for i in range(s, min(s + BATCH, N_IMAGES))])
               for s in range(0, N_IMAGES, BATCH)]

    def bare():
        with torch.inference_mode():
            for x in batches:
                backbone.compute_features(x.to(DEVICE, non_blocking=True), {"image"})
        _sync()

    bare()  # warm-up (kernels, allocator)
    bare_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        bare()
        bare_times.append(time.perf_counter() - t0)

    rounds = iter(range(100))

    def pipeline():
        cache = FeatureCache(tmp_path / f"cache{next(rounds)}")  # a fresh cache: every round extracts
        extract_features(backbone, source, {"image"}, cache=cache, batch_size=BATCH, num_workers=WORKERS,
                         device=DEVICE)
        _sync()

    benchmark.pedantic(pipeline, rounds=3, iterations=1, warmup_rounds=0)
    ratio = benchmark.stats["min"] / min(bare_times)
    benchmark.extra_info.update(device=DEVICE, images=N_IMAGES, batch=BATCH, workers=WORKERS,
                                bare_min_s=round(min(bare_times), 3), pipeline_min_s=round(benchmark.stats["min"], 3),
                                ratio=round(ratio, 3), images_per_s=round(N_IMAGES / benchmark.stats["min"], 1))
    print(f"\npipeline {benchmark.stats['min']:.3f} s vs bare forward {min(bare_times):.3f} s: ratio {ratio:.3f} "
          f"({N_IMAGES} images, batch {BATCH}, {WORKERS} workers, {DEVICE})")
    assert ratio <= 1.10

