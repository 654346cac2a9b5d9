"""All metrics on 50k ID + 50k OOD scores (goal: <= 50 ms on a 2-core CPU)."""

import numpy as np
import pytest

from oodbench.metrics import ood_metrics


@pytest.mark.benchmark
def test_all_metrics_50k_50k(benchmark):
    rng = np.random.default_rng(0)
    id_s = rng.normal(1, 1, 50_000).astype(np.float32)
    ood_s = rng.normal(0, 1.5, 50_000).astype(np.float32)
    result = benchmark(ood_metrics, id_s, ood_s)
    assert 0.5 < result["auroc"] < 1
