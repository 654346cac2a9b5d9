"""Extraction over several processes (gloo, CPU): the batches are dealt to the ranks, rank 0 writes the cache.

Reference: the same extraction in this (single) process. The cache folders must hold the same files with the
same bytes, and rank 0's features must equal the single process's, for an image count no world size divides,
shards of several batches, unreadable images on both ranks, and fewer batches than ranks.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from oodbench.features.cache import FeatureCache
from oodbench.features.extract import extract_features

from dist_helpers import BrokenSource, spawn, tree_bytes

NAMES = {"image", "local", "logits", "labels", "class_names"}


def _source(n: int, broken=()) -> BrokenSource:
    from oodbench.datasets.digits import build_digits

    images, labels = build_digits().arrays["id_test"]
    return BrokenSource("part", images[:n], labels[:n], broken=tuple(broken))


def _extract(cache_dir, n, broken, batch_size, shard_size):
    from oodbench.backbones import create_backbone
    from oodbench.datasets.digits import CLASS_NAMES, PROMPT

    bb = create_backbone("digits_clip")
    return extract_features(bb, _source(n, broken), NAMES, cache=FeatureCache(cache_dir), batch_size=batch_size,
                            shard_size=shard_size, num_workers=0, class_names=CLASS_NAMES, prompt=PROMPT)


# 9 batches over 5 shards (uneven for 2 processes); unreadable images in both ranks' batches
DEFAULT_CASE = (25, (4, 13, 14, 24), 3, 6)


def job(rank, out_dir, n, broken, batch_size, shard_size):
    """Inside a 2-process group: extract into ``out_dir/two``; rank 0 pickles its features."""
    feats = _extract(out_dir / "two", n, broken, batch_size, shard_size)
    if rank == 0:
        (out_dir / "features.pkl").write_bytes(pickle.dumps((feats.arrays, feats.meta["skipped"])))
    else:
        assert feats.arrays == {}  # only rank 0 loads (and scores)


def _worker(rank, out_dir, *case):
    from oodbench import distributed

    with distributed.session("cpu"):
        job(rank, out_dir, *case)


def _compare(tmp_path, out_dir, n, broken, batch_size, shard_size):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each spawned rank: a CPU matmul's sums may depend on the thread count
    try:
        one = _extract(tmp_path / "one", n, broken, batch_size, shard_size)
    finally:
        torch.set_num_threads(threads)
    arrays, skipped = pickle.loads((out_dir / "features.pkl").read_bytes())
    a, b = tree_bytes(tmp_path / "one"), tree_bytes(out_dir / "two")
    assert sorted(a) == sorted(b) and a == b  # same keys, same files, same bytes
    assert set(arrays) == set(one.arrays)
    for k in one.arrays:
        assert arrays[k].dtype == one.arrays[k].dtype and np.array_equal(arrays[k], one.arrays[k]), k
    assert skipped == one.meta["skipped"] and len(skipped) == len(broken)
    # nothing dropped or duplicated: every readable image once, in file-list order
    kept = [i for i in range(n) if i not in broken]
    assert np.array_equal(one.arrays["labels"], _source(n).labels[kept])
    assert len(one.arrays["image"]) == len(kept)


def test_two_processes_write_the_single_process_cache(tmp_path, two_process_outputs):
    _compare(tmp_path, two_process_outputs, *DEFAULT_CASE)


@pytest.mark.slow
def test_fewer_batches_than_processes(tmp_path):
    case = (1, (), 4, 8)  # one batch: rank 1 forwards nothing
    spawn(_worker, 2, tmp_path, *case)
    _compare(tmp_path, tmp_path, *case)


def _failing_worker(rank, cache_dir, out_dir):
    import os

    from oodbench import distributed

    os.environ["OODBENCH_FAIL_RANK"] = "1"
    with distributed.session("cpu"):
        try:
            _extract(cache_dir, 25, (), 3, 6)
        except distributed.DistributedError as exc:
            (out_dir / f"rank{rank}.txt").write_text(str(exc))


@pytest.mark.slow
def test_a_failing_rank_fails_every_rank_and_rank_0_writes_no_shard(tmp_path):
    spawn(_failing_worker, 2, tmp_path / "cache", tmp_path)
    for r in (0, 1):
        text = (tmp_path / f"rank{r}.txt").read_text()
        assert "\n" not in text and text.startswith("rank 1 of 2 failed") and "OODBENCH_FAIL_RANK" in text
    assert not list((tmp_path / "cache").rglob("*.npy"))  # rank 1 failed in the first round: no shard written
