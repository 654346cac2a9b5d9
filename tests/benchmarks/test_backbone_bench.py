"""CLIP backbone timings: trimmed vs full-context text encoding, and the cost of the value-path local features.

Run with ``pytest -m benchmark tests/benchmarks/test_backbone_bench.py --benchmark-enable``. Knobs:
``OODBENCH_BENCH_DEVICE`` (default cpu), ``OODBENCH_BENCH_PROMPTS`` (default 200), ``OODBENCH_BENCH_BATCH`` (16).
The ratios are recorded in ``extra_info``; outputs are checked for equality, speed is not asserted.
"""

import os
import time

import pytest
import torch
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from oodbench.backbones import create_backbone

pytestmark = pytest.mark.benchmark

DEVICE = os.environ.get("OODBENCH_BENCH_DEVICE", "cpu")
N_PROMPTS = int(os.environ.get("OODBENCH_BENCH_PROMPTS", "200"))
BATCH = int(os.environ.get("OODBENCH_BENCH_BATCH", "16"))


def _sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def vit_b16():
    return create_backbone("clip_vit_b16", pretrained="random").to(DEVICE)


def test_trimmed_text_encoding(benchmark, vit_b16):
    prompts = [f"a photo of a {c}" for c in IMAGENET_CLASSNAMES[:N_PROMPTS]]

    def full():
        with torch.inference_mode():
            out = torch.cat([vit_b16.model.encode_text(vit_b16.tokenize(prompts[i : i + 100])) for i in range(0, len(prompts), 100)])
        _sync()
        return out

    t0 = time.perf_counter()
    ref = full()
    t_full = time.perf_counter() - t0

    def trimmed():
        with torch.inference_mode():
            out = vit_b16.encode_text(prompts, batch_size=100)
        _sync()
        return out

    out = benchmark.pedantic(trimmed, rounds=1, iterations=1)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    t_trim = benchmark.stats.stats.mean
    benchmark.extra_info.update({"prompts": len(prompts), "full_context_s": t_full, "trimmed_s": t_trim,
                                 "speedup": t_full / t_trim})


def test_local_feature_overhead(benchmark, vit_b16):
    x = torch.randn(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(DEVICE)

    def run(names):
        _sync()
        t = time.perf_counter()
        out = vit_b16.compute_features(x, names)
        _sync()
        return out, time.perf_counter() - t

    run({"image"})  # warm-up
    _, t_image = run({"image"})
    out = benchmark.pedantic(lambda: run({"image", "local"})[0], rounds=3, iterations=1)
    assert out["local"].shape == (BATCH, 196, 512)
    t_both = benchmark.stats.stats.mean
    benchmark.extra_info.update({"batch": BATCH, "image_only_s": t_image, "image_and_local_s": t_both,
                                 "overhead": t_both / t_image})
