"""SeTAR search time: the fast search against the plain reference searcher (goal: reference / fast >= 5x on CPU).

Both select the same plan with the same per-candidate losses (asserted); the ratio of the wall times is recorded
in the benchmark's ``extra_info`` (``reference_seconds``, ``speedup``). Run with ``make bench`` or
``pytest -m benchmark tests/benchmarks/test_search_bench.py --benchmark-enable``.
"""

import os

import pytest
import torch
from reference_search import reference_search

from oodbench.methods.setar.search import SearchConfig, search


@pytest.fixture(autouse=True)
def _threads():
    """``OODBENCH_BENCH_THREADS`` overrides torch's thread count (useful on a shared, busy machine)."""
    n = torch.get_num_threads()
    if os.environ.get("OODBENCH_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["OODBENCH_BENCH_THREADS"]))
    yield
    torch.set_num_threads(n)


def _timed(benchmark, backbone, images, labels, names, prompt, cfg):
    fast = benchmark.pedantic(search, args=(backbone, images, labels, names, prompt, cfg), rounds=1, iterations=1)
    fast_s = fast.log.seconds
    ref = reference_search(backbone, images, labels, names, prompt, cfg)
    settings = [[e.tower, e.weight_type, e.layer, e.ratio] for e in fast.plan.entries]
    assert settings == ref["settings"]
    for c, r in zip(fast.log.candidates, ref["candidates"], strict=True):
        assert c.locoop_loss == pytest.approx(r["locoop_loss"], abs=1e-5)
    benchmark.extra_info.update({
        "fast_seconds": round(fast_s, 3), "reference_seconds": round(ref["seconds"], 3),
        "speedup": round(ref["seconds"] / fast_s, 2), "candidates": len(ref["candidates"]),
        "candidates_computed_fast": fast.info["candidates_computed"], "threads": torch.get_num_threads(),
        "plan": fast.plan.describe(),
    })
    return ref["seconds"] / fast_s


@pytest.mark.benchmark
def test_search_speed_digits_model(benchmark):
    """The shipped digits CLIP (4 + 3 blocks), its 120-image val split, 6 classes, all 9 ratios (63 candidates)."""
    from oodbench.backbones import create_backbone
    from oodbench.datasets.digits import CLASS_NAMES, PROMPT, resolve_digits

    bb = create_backbone("digits_clip")
    val = resolve_digits().id_val
    pre = bb.preprocess()
    images = torch.stack([pre(val.load(i)) for i in range(len(val))])
    cfg = SearchConfig(lam=0.1, top_k=2, batch_size=512, forward_batch_size=120)
    speedup = _timed(benchmark, bb, images, torch.from_numpy(val.labels.copy()), list(CLASS_NAMES), PROMPT, cfg)
    assert speedup > 1


@pytest.mark.benchmark
def test_search_speed_vit_b16(benchmark):
    """Random-init open_clip ViT-B-16-quickgelu (12 + 12 blocks of the paper's CLIP-B/16), 4 images of 224 px,
    3 classes, ratios 0 / 0.2 / 0.4 (72 candidates), so that the reference finishes in minutes on 2 cores."""
    from oodbench.backbones import create_backbone

    bb = create_backbone("clip_vit_b16", pretrained="random", seed=0)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 224, 224, generator=g)
    labels = torch.tensor([0, 1, 2, 0])
    cfg = SearchConfig(lam=0.1, top_k=1, batch_size=512, forward_batch_size=4, ratios=(0.0, 0.2, 0.4))
    speedup = _timed(benchmark, bb, images, labels, ["cat", "dog", "car"], "a photo of a {}", cfg)
    assert speedup > 1
