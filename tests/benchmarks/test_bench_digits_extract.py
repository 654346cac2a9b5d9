"""Extraction of every split of the digits benchmark (2,753 images) with digits_clip, cold cache.

Goal (issue: embedded digits benchmark): <= 30 s on 2 CPU cores. Run with ``pytest -m benchmark``.
"""

import pytest

from oodbench.backbones import create_backbone
from oodbench.datasets import get_benchmark, resolve
from oodbench.features.cache import FeatureCache
from oodbench.features.extract import extract_benchmark

pytestmark = pytest.mark.benchmark


def test_extract_every_digits_split_cold_cache(benchmark, tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    backbone = create_backbone("digits_clip")
    resolved = resolve(get_benchmark("digits"))

    def run():
        cache = FeatureCache(tmp_path_factory.mktemp("cold"))
        return extract_benchmark(backbone, resolved, {"image", "local", "logits", "text", "logit_scale"}, cache=cache)

    feats = benchmark.pedantic(run, rounds=3, iterations=1)
    assert sum(len(f) for f in feats.values()) == 2753
    assert benchmark.stats.stats.max <= 30.0
