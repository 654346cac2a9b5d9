"""Consolidating cache shards streams them: the joined file is byte-identical to ``np.save`` of the joined
array, empty shards (every image unreadable) are dropped, and no part of the target stays mapped."""

import numpy as np

from oodbench.features.cache import DiskEntry


def test_consolidate_bytes_equal_np_save(tmp_path):
    rng = np.random.default_rng(0)
    entry = DiskEntry(tmp_path / "key", "key", n=10, shard_size=3)  # 4 shards: 3, 3, 3, 1 images
    parts = [rng.standard_normal((3, 4, 5)).astype(np.float32), np.zeros((0, 4, 5), np.float32),
             rng.standard_normal((2, 4, 5)).astype(np.float32), rng.standard_normal((1, 4, 5)).astype(np.float32)]
    for s, p in enumerate(parts):
        entry.write("local", s, p)
    entry.consolidate("local")
    reference = tmp_path / "reference.npy"
    np.save(reference, np.concatenate([p for p in parts if len(p)]))
    full = tmp_path / "key" / "local" / "full.npy"
    assert full.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in (tmp_path / "key" / "local").iterdir()) == ["full.npy"]
    np.testing.assert_array_equal(entry.load("local"), np.load(reference))


def test_consolidate_index_int64(tmp_path):
    entry = DiskEntry(tmp_path / "k", "k", n=5, shard_size=2)
    for s, idx in enumerate([np.array([0, 1]), np.array([3]), np.array([4])]):
        entry.write("_index", s, idx.astype(np.int64))
    entry.consolidate("_index")
    reference = tmp_path / "r.npy"
    np.save(reference, np.array([0, 1, 3, 4], np.int64))
    assert (tmp_path / "k" / "_index" / "full.npy").read_bytes() == reference.read_bytes()
    assert entry.read("_index", 1).tolist() == [3]
