"""Postprocessor timings at ImageNet-like sizes on CPU (run with `make bench` / `pytest -m benchmark`).

Sizes: 10,000 test samples; CLIP D = 512 with 1,000 classes (and 196 patches for GL-MCM on 1,000 samples);
classifier F = 2,048 with 1,000 classes; KNN bank of 50,000; NegLabel with 10,000 negatives in 100 groups.
"""

import numpy as np
import pytest

from oodbench.features import Features
from oodbench.registry import get


def _rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def clip_feats():
    r = _rng()
    return {"image": r.standard_normal((10_000, 512), dtype=np.float32),
            "local": r.standard_normal((1_000, 196, 512), dtype=np.float32),
            "text": r.standard_normal((1_000, 512), dtype=np.float32)}


@pytest.fixture(scope="module")
def cls_feats():
    r = _rng()
    h = np.maximum(r.standard_normal((10_000, 2048), dtype=np.float32), 0)
    return Features({"penultimate": h, "logits": r.standard_normal((10_000, 1000), dtype=np.float32)},
                    {"fc_weight": 0.02 * r.standard_normal((1000, 2048), dtype=np.float32),
                     "fc_bias": np.zeros(1000, np.float32)})


@pytest.mark.benchmark
def test_mcm_10k_1000_classes(benchmark, clip_feats):
    f = Features({"image": clip_feats["image"]}, {"text": clip_feats["text"]})
    s = benchmark(get("postprocessors", "mcm")().score, f)
    assert s.shape == (10_000,)


@pytest.mark.benchmark
def test_glmcm_1k_196_patches_1000_classes(benchmark, clip_feats):
    f = Features({"image": clip_feats["image"][:1_000], "local": clip_feats["local"]}, {"text": clip_feats["text"]})
    s = benchmark.pedantic(get("postprocessors", "glmcm")().score, args=(f,), rounds=1, iterations=1)
    assert s.shape == (1_000,)


@pytest.mark.benchmark
@pytest.mark.parametrize("name", ["energy", "react", "dice", "ash_s"])
def test_classifier_scores_10k(benchmark, cls_feats, name):
    pp = get("postprocessors", name)().fit(cls_feats)
    s = benchmark.pedantic(pp.score, args=(cls_feats,), rounds=2, iterations=1)
    assert s.shape == (10_000,)


@pytest.mark.benchmark
def test_knn_10k_queries_50k_bank(benchmark):
    r = _rng()
    bank = Features({"penultimate": np.abs(r.standard_normal((50_000, 512), dtype=np.float32))})
    query = Features({"penultimate": np.abs(r.standard_normal((10_000, 512), dtype=np.float32))})
    pp = get("postprocessors", "knn")().fit(bank)
    s = benchmark.pedantic(pp.score, args=(query,), rounds=1, iterations=1)
    assert s.shape == (10_000,)


@pytest.mark.benchmark
def test_neglabel_score_10k_images_10k_negatives(benchmark):
    from oodbench.postprocessors.neglabel import neglabel_score

    r = _rng()

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    pos = unit(r.standard_normal((1_000, 512), dtype=np.float32))
    neg = unit(r.standard_normal((10_499, 512), dtype=np.float32))
    image = r.standard_normal((10_000, 512), dtype=np.float32)
    s = benchmark.pedantic(neglabel_score, args=(image, pos, neg), rounds=1, iterations=1)
    assert s.shape == (10_000,)
