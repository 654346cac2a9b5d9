"""The keyed feature cache: every key ingredient, reuse without forward passes, resume, atomic shards."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from oodbench.backbones import create_backbone
from oodbench.data.sources import ArraySource
from oodbench.features import cache as cache_mod
from oodbench.features.cache import FeatureCache
from oodbench.features.extract import compute_shared, extract_features


class Interrupted(Exception):
    pass


def _extract(backbone, source, cache, names=("image",), **kw):
    kw.setdefault("batch_size", 4)
    kw.setdefault("shard_size", 8)
    return extract_features(backbone, source, set(names), cache=cache, **kw)


def test_second_call_costs_no_forward_pass(clip, array_source, tmp_path, forward_calls):
    cache = FeatureCache(tmp_path)
    calls = forward_calls(clip)
    first = _extract(clip, array_source, cache, ("image", "local"))
    assert len(calls) == 10 and first.meta["forward_batches"] == 10  # 37 images, batches of 4 inside shards of 8
    second = _extract(clip, array_source, cache, ("image", "local"))
    assert len(calls) == 10 and second.meta["forward_batches"] == 0
    for name in ("image", "local", "labels"):
        assert np.array_equal(first[name], second[name])
    assert second.meta["cache_key"] == first.meta["cache_key"]
    meta = json.loads((tmp_path / first.meta["cache_key"] / "meta.json").read_text())
    assert meta["n"] == 37 and meta["shard_size"] == 8 and meta["ingredients"]["plan"] == "none"


def test_each_key_ingredient_changes_the_key(clip, array_source, tmp_path, forward_calls):
    cache = FeatureCache(tmp_path)
    base = _extract(clip, array_source, cache).meta["cache_key"]
    images = array_source.images.copy()
    images[5, 0, 0, 0] ^= 1  # one pixel value of one image
    variants = {
        "weights": (create_backbone("test_clip_tiny", seed=1), array_source, {}),
        "plan": (clip, array_source, {"plan_hash": "3f2a9c"}),
        "preprocessing": (create_backbone("test_clip_tiny", interpolation="bilinear"), array_source, {}),
        "file list (pixels)": (clip, ArraySource("arrays", images, array_source.labels), {}),
        "file list (labels)": (clip, ArraySource("arrays", array_source.images, (array_source.labels + 1) % 3), {}),
        "precision": (clip, array_source, {"precision": "bf16"}),
    }
    keys = {}
    for what, (backbone, source, kw) in variants.items():
        calls = forward_calls(backbone)
        feats = _extract(backbone, source, cache, **kw)
        assert calls, f"{what}: a changed ingredient must not be served from the cache"
        keys[what] = feats.meta["cache_key"]
    assert base not in keys.values() and len(set(keys.values())) == len(keys)
    assert create_backbone("test_clip_tiny").weights_hash() == clip.weights_hash()
    assert _extract(create_backbone("test_clip_tiny"), array_source, cache).meta["forward_batches"] == 0


def test_file_list_ingredient_for_files(clip, file_source, tmp_path):
    cache = FeatureCache(tmp_path / "c")
    first = _extract(clip, file_source, cache)
    relabelled = file_source.subset(list(range(len(file_source))))
    relabelled.labels = relabelled.labels[::-1].copy()
    assert _extract(clip, relabelled, cache).meta["cache_key"] != first.meta["cache_key"]
    shorter = file_source.subset(list(range(len(file_source) - 1)))
    assert _extract(clip, shorter, cache).meta["cache_key"] != first.meta["cache_key"]


def test_later_arrays_are_added_without_redoing_cached_ones(clip, array_source, tmp_path, forward_calls):
    cache = FeatureCache(tmp_path)
    first = _extract(clip, array_source, cache, ("image",))
    calls = forward_calls(clip)
    both = _extract(clip, array_source, cache, ("image", "local"))
    assert calls and all(c == {"local"} for c in calls)  # only the missing array is computed
    assert np.array_equal(both["image"], first["image"])
    calls.clear()
    names = ["a", "b", "c"]
    logits = _extract(clip, array_source, cache, ("logits",), class_names=names, prompt="a photo of a {}")
    other = _extract(clip, array_source, cache, ("logits",), class_names=names[::-1], prompt="a photo of a {}")
    assert not calls  # logits derive from cached image embeddings: new class names cost no forward pass
    assert np.allclose(other["logits"], logits["logits"][:, ::-1], atol=1e-6)


def test_interrupted_run_resumes_from_finished_shards(clip, array_source, tmp_path, monkeypatch):
    reference = _extract(clip, array_source, None, ("image", "local"))
    cache = FeatureCache(tmp_path)
    original = clip.compute_features
    calls = []

    def dying(images, names):
        calls.append(len(images))
        if len(calls) == 6:
            raise Interrupted()
        return original(images, names)

    monkeypatch.setattr(clip, "compute_features", dying)
    with pytest.raises(Interrupted):
        _extract(clip, array_source, cache, ("image", "local"))
    key_dir = next(p for p in tmp_path.iterdir() if p.name != "shared")
    assert sorted(p.name for p in (key_dir / "image").iterdir()) == ["shard_00000.npy", "shard_00001.npy"]
    calls.clear()
    monkeypatch.setattr(clip, "compute_features", lambda images, names: calls.append(len(images)) or
                        original(images, names))
    resumed = _extract(clip, array_source, cache, ("image", "local"))
    assert sum(calls) == 37 - 16  # only the images of the three unfinished shards
    for name in ("image", "local", "labels"):
        assert np.array_equal(resumed[name], reference[name])


def test_a_half_written_shard_is_never_read(clip, array_source, tmp_path, monkeypatch, caplog):
    reference = _extract(clip, array_source, None)
    cache = FeatureCache(tmp_path)
    real_save = np.save
    state = {"n": 0}

    def failing_save(f, arr, **kw):
        state["n"] += 1
        if state["n"] == 4:  # the 4th file: write part of it, then "crash"
            f.write(b"\x93NUMPY partial")
            raise OSError("disk full")
        return real_save(f, arr, **kw)

    monkeypatch.setattr(cache_mod.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _extract(clip, array_source, cache)
    monkeypatch.setattr(cache_mod.np, "save", real_save)
    key_dir = next(p for p in tmp_path.iterdir() if p.name != "shared")
    files = sorted(str(p.relative_to(key_dir)) for p in key_dir.rglob("*") if p.is_file())
    assert files == ["_index/shard_00000.npy", "_index/shard_00001.npy", "image/shard_00000.npy", "meta.json"]
    # a stray temporary (as a killed process leaves) and a corrupt file under a final name
    (key_dir / "image" / ".shard_00001.npy.999.deadbeef.tmp").write_bytes(b"\x93NUMPY garbage")
    (key_dir / "image" / "shard_00002.npy").write_bytes(b"\x93NUMPY garbage")
    with caplog.at_level(logging.WARNING, logger="oodbench"):
        feats = _extract(clip, array_source, cache)
    assert "recomputing" in caplog.text
    assert np.array_equal(feats["image"], reference["image"])


def test_complete_arrays_are_consolidated_and_read_only(clip, array_source, tmp_path):
    feats = _extract(clip, array_source, FeatureCache(tmp_path), ("image", "local"))
    key_dir = tmp_path / feats.meta["cache_key"]
    assert sorted(p.name for p in (key_dir / "local").iterdir()) == ["full.npy"]
    assert feats["local"].shape == (37, 16, 32)
    with pytest.raises(ValueError):
        feats["local"][0, 0, 0] = 1.0  # cached features are never modified in place


def test_shared_entries_are_cached_by_class_names_and_prompt(clip, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    calls = []
    original = clip.shared_features
    monkeypatch.setattr(clip, "shared_features", lambda *a: calls.append(a[1:]) or original(*a))
    one = compute_shared(clip, {"text", "logit_scale"}, ["a", "b"], "p {}", cache=cache)
    two = compute_shared(clip, {"text", "logit_scale"}, ["a", "b"], "p {}", cache=cache)
    assert len(calls) == 1 and np.array_equal(one["text"], two["text"]) and one["logit_scale"] == two["logit_scale"]
    compute_shared(clip, {"text"}, ["a", "b"], "q {}", cache=cache)
    compute_shared(clip, {"text"}, ["a", "b"], "p {}", cache=cache, plan_hash="p1")
    assert len(calls) == 3


def test_in_memory_extraction_writes_nothing(clip, array_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    feats = _extract(clip, array_source, None)
    assert feats.meta["cache_path"] is None and list(tmp_path.iterdir()) == []


def test_default_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_CACHE_DIR", str(tmp_path / "x"))
    assert FeatureCache().root == tmp_path / "x" / "features"


def _uncompressed_tree(root, fmt):
    """6 images in 2 class folders, BMP or PPM: changing a pixel keeps the file size."""
    rng = np.random.default_rng(3)
    for i in range(6):
        path = root / ("a" if i % 2 else "b") / f"{i}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    return root


def _replace_in_place(path):
    """Rewrite ``path`` in place (same inode) with another image of exactly the same byte size."""
    with Image.open(path) as im:
        arr = 255 - np.asarray(im.convert("RGB"))
    tmp = path.with_name("new" + path.suffix)
    Image.fromarray(arr).save(tmp)
    data, old = tmp.read_bytes(), path.read_bytes()
    tmp.unlink()
    assert len(data) == len(old) and data != old
    with open(path, "r+b") as f:
        f.write(data)


@pytest.mark.parametrize("fmt", ["bmp", "ppm"])
def test_file_content_folder_and_list_changes_give_new_keys(clip, tmp_path, fmt, forward_calls):
    """Same-size replacement in place -> new key and new features; a byte-identical second folder -> its own key;
    a renamed file -> new key; nothing changed -> the same key, no forward pass."""
    from oodbench.data.readers import read_imagefolder

    cache = FeatureCache(tmp_path / "cache")
    root = _uncompressed_tree(tmp_path / "one", fmt)
    first = _extract(clip, read_imagefolder(root, "s"), cache)
    calls = forward_calls(clip)
    again = _extract(clip, read_imagefolder(root, "s"), cache)
    assert again.meta["cache_key"] == first.meta["cache_key"] and not calls  # unchanged: a hit

    import shutil

    twin = tmp_path / "two"
    shutil.copytree(root, twin)  # same names, sizes and bytes, another folder
    other = _extract(clip, read_imagefolder(twin, "s"), cache)
    assert other.meta["cache_key"] != first.meta["cache_key"] and calls

    src = read_imagefolder(root, "s")
    changed = src.relpaths.index(f"b/0.{fmt}")
    _replace_in_place(root / "b" / f"0.{fmt}")
    calls.clear()
    replaced = _extract(clip, read_imagefolder(root, "s"), cache)
    assert replaced.meta["cache_key"] != first.meta["cache_key"] and calls
    fresh = _extract(clip, read_imagefolder(root, "s"), None)  # what the new files give, without any cache
    np.testing.assert_array_equal(replaced["image"], fresh["image"])
    assert not np.allclose(replaced["image"][changed], first["image"][changed])
    unchanged = [i for i in range(len(src)) if i != changed]
    np.testing.assert_array_equal(replaced["image"][unchanged], first["image"][unchanged])

    (root / "a" / f"1.{fmt}").rename(root / "a" / f"7.{fmt}")
    renamed = _extract(clip, read_imagefolder(root, "s"), cache)
    assert renamed.meta["cache_key"] not in {first.meta["cache_key"], replaced.meta["cache_key"]}
