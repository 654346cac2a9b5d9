"""Feature extraction against straightforward per-image references computed with the models' own APIs."""

import logging

import numpy as np
import pytest
import torch

from oodbench.data.readers import read_imagefolder
from oodbench.errors import DataError, IncompatibleError, UserError
from oodbench.features.cache import FeatureCache
from oodbench.features.extract import clip_logits, compute_shared, extract_benchmark, extract_features


def _stack(backbone, source, indices=None):
    tf = backbone.preprocess()
    idx = range(len(source)) if indices is None else indices
    return torch.stack([tf(source.load(i)) for i in idx])


def test_clip_image_features_equal_open_clip_encode_image(clip, array_source):
    feats = extract_features(clip, array_source, {"image"}, batch_size=5, shard_size=10)
    with torch.no_grad():
        ref = clip.model.encode_image(_stack(clip, array_source)).numpy()
    np.testing.assert_allclose(feats["image"], ref, rtol=1e-5, atol=1e-5)
    assert np.array_equal(feats["labels"], array_source.labels)
    assert set(feats.arrays) == {"image", "labels"} and feats.meta["n_used"] == 37
    assert feats.meta["precision"] == "fp32" and feats.meta["skipped"] == []


def test_clip_logits_are_scaled_cosines_to_the_class_prompts(clip, array_source):
    names, prompt = ["cat", "dog", "car", "tree"], "a photo of a {}"
    feats = extract_features(clip, array_source, {"logits"}, class_names=names, prompt=prompt, batch_size=16)
    with torch.no_grad():
        img = clip.model.encode_image(_stack(clip, array_source))
        txt = clip.model.encode_text(clip.tokenizer([prompt.format(c) for c in names]))  # full context path
        ref = clip.model.logit_scale.exp() * torch.nn.functional.normalize(img, dim=-1) @ \
            torch.nn.functional.normalize(txt, dim=-1).T
    np.testing.assert_allclose(feats["logits"], ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(feats["text"], txt.numpy(), rtol=1e-4, atol=1e-5)
    assert feats["logit_scale"] == pytest.approx(float(clip.model.logit_scale.detach().exp()))
    assert feats["logits"].shape == (37, 4) and feats["logits"].dtype == np.float32


def test_clip_logits_formula():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    ref = np.array([[50 * (a @ b) / np.linalg.norm(a) / np.linalg.norm(b) for b in txt] for a in img])
    np.testing.assert_allclose(clip_logits(img, txt, 50.0), ref, rtol=1e-5)


def test_classifier_features_equal_timm_forward(resnet, array_source):
    feats = extract_features(resnet, array_source, {"logits", "penultimate", "fc_weight", "fc_bias"}, batch_size=8)
    x = _stack(resnet, array_source)
    with torch.no_grad():
        logits = resnet.model(x)
        pen = resnet.model.forward_head(resnet.model.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(feats["logits"], logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats["penultimate"], pen.numpy(), rtol=1e-5, atol=1e-5)
    fc = resnet.model.get_classifier()
    np.testing.assert_array_equal(feats["fc_weight"], fc.weight.detach().numpy())
    np.testing.assert_array_equal(feats["fc_bias"], fc.bias.detach().numpy())


def test_files_with_worker_processes_keep_order_and_labels(clip, file_source):
    feats = extract_features(clip, file_source, {"image", "local"}, batch_size=4, num_workers=2, shard_size=8)
    with torch.no_grad():
        ref = clip.compute_features(_stack(clip, file_source), {"image", "local"})
    np.testing.assert_allclose(feats["image"], ref["image"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats["local"], ref["local"].numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(feats["labels"], file_source.labels) and feats["local"].shape == (13, 16, 32)


def test_unreadable_images_are_skipped_and_reported(clip, tmp_path, bad_files, caplog):
    good_dir = tmp_path / "set" / "images"
    rng = np.random.default_rng(2)
    from PIL import Image

    good_dir.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(good_dir / f"g{i}.png")
    bad = bad_files(good_dir)
    src = read_imagefolder(tmp_path / "set", "set", ood=True)
    assert len(src) == 10
    cache = FeatureCache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="oodbench"):
        feats = extract_features(clip, src, {"image"}, cache=cache, batch_size=3, num_workers=2)
    assert feats.meta["n_images"] == 10 and feats.meta["n_used"] == 6
    assert sorted(s["path"] for s in feats.meta["skipped"]) == sorted(str(p) for p in bad)
    assert "4 unreadable image(s) left out" in caplog.text
    good = [i for i in range(len(src)) if src.relpaths[i].split("/")[-1].startswith("g")]
    with torch.no_grad():
        ref = clip.model.encode_image(_stack(clip, src, good)).numpy()
    np.testing.assert_allclose(feats["image"], ref, rtol=1e-5, atol=1e-5)
    assert len(feats["labels"]) == 6
    # the skipped list survives in the cache, and --on-bad fail refuses the same data
    again = extract_features(clip, src, {"image"}, cache=cache, batch_size=3)
    assert again.meta["forward_batches"] == 0 and len(again.meta["skipped"]) == 4
    with pytest.raises(DataError, match=r"unreadable image .*00_zero\.jpg .* --on-bad skip"):
        extract_features(clip, src, {"image"}, cache=cache, on_bad="fail")
    with pytest.raises(DataError, match=r"unreadable image .*00_zero\.jpg"):
        extract_features(clip, src, {"image"}, on_bad="fail")


def test_reduced_precisions_are_close_and_recorded(clip, array_source, tmp_path):
    cache = FeatureCache(tmp_path)
    ref = extract_features(clip, array_source, {"image"}, cache=cache)
    for precision, tol in (("bf16", 5e-2), ("fp16", 1e-2)):
        feats = extract_features(clip, array_source, {"image"}, cache=cache, precision=precision)
        assert feats.meta["precision"] == precision and feats.meta["cache_key"] != ref.meta["cache_key"]
        assert feats["image"].dtype == np.float32
        cos = np.sum(feats["image"] * ref["image"], 1) / np.linalg.norm(feats["image"], axis=1) / \
            np.linalg.norm(ref["image"], axis=1)
        assert cos.min() > 1 - tol and not np.array_equal(feats["image"], ref["image"])


def test_request_errors(clip, resnet, array_source):
    with pytest.raises(UserError, match="unknown feature name"):
        extract_features(clip, array_source, {"imag"})
    with pytest.raises(IncompatibleError, match="cannot produce image, local"):
        extract_features(resnet, array_source, {"image", "local"})
    with pytest.raises(UserError, match="precision"):
        extract_features(clip, array_source, {"image"}, precision="fp8")
    with pytest.raises(UserError, match="class names"):
        extract_features(clip, array_source, {"logits"})


def test_extract_benchmark_every_split_shared_once(clip, tmp_path, monkeypatch):
    from oodbench.datasets import resolve
    from oodbench.data.adhoc import adhoc_benchmark
    from PIL import Image

    rng = np.random.default_rng(3)
    for folder, n in (("test/x", 3), ("test/y", 2), ("val/x", 1), ("val/y", 1), ("far", 4), ("near/s", 2)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (33, 33, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    (tmp_path / "cls.txt").write_text("x\ny\n")
    spec = adhoc_benchmark(tmp_path / "test", tmp_path / "cls.txt", {"far": tmp_path / "far"},
                           near_ood={"near": tmp_path / "near"}, id_val=tmp_path / "val")
    calls = []
    original = clip.shared_features
    monkeypatch.setattr(clip, "shared_features", lambda *a: calls.append(a) or original(*a))
    out = extract_benchmark(clip, resolve(spec), {"logits", "local"}, cache=FeatureCache(tmp_path / "c"))
    assert list(out) == ["ID test", "ID val", "far", "near"] and len(calls) == 1
    assert [(f.meta["role"], f.meta["group"], len(f)) for f in out.values()] == [
        ("id_test", "id", 5), ("id_val", "id", 2), ("ood", "far", 4), ("ood", "near", 2)]
    assert out["ID test"]["labels"].tolist() == [0, 0, 0, 1, 1] and out["ID test"]["logits"].shape == (5, 2)
    assert out["far"].shared["text"] is out["ID test"].shared["text"]
    assert list(extract_benchmark(clip, resolve(spec), {"image"}, roles=["id_val"])) == ["ID val"]


def test_compute_shared_static_entries(clip):
    shared = compute_shared(clip, {"class_names", "prompt", "logit_scale"}, ["a"], "x {}")
    assert shared == {"class_names": ["a"], "prompt": "x {}", "logit_scale": pytest.approx(clip.logit_scale())}


def test_device_side_normalisation_is_exact(clip, resnet, file_source):
    from oodbench.features.runner import device_split

    for backbone in (clip, resnet):
        full = backbone.preprocess()
        host, mean, std = device_split(full)
        m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        for i in range(len(file_source)):
            img = file_source.load(i)
            u8 = host(img)
            assert u8.dtype == torch.uint8
            assert torch.equal(u8.float().div_(255).sub_(m).div_(s), full(img))
    assert device_split(lambda im: im) is None


def test_model_sees_whole_batches_despite_chunked_loading(clip, array_source, forward_calls, monkeypatch):
    import oodbench.features.runner as runner

    monkeypatch.setattr(runner, "CHUNK", 3)
    sizes = []
    original = clip.compute_features
    monkeypatch.setattr(clip, "compute_features", lambda x, names: sizes.append(len(x)) or original(x, names))
    feats = extract_features(clip, array_source, {"image"}, batch_size=10, shard_size=20)
    assert sizes == [10, 10, 10, 7]
    with torch.no_grad():
        ref = clip.model.encode_image(_stack(clip, array_source)).numpy()
    np.testing.assert_allclose(feats["image"], ref, rtol=1e-5, atol=1e-5)
