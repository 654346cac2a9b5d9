"""``extract_features(decode="gpu")`` on the CPU: its own cache key, the PIL path for files the fast path does
not take, unreadable files skipped as on the PIL path, features close to the PIL path's, recorded in meta."""

import numpy as np
import torch
from PIL import Image

from oodbench.backbones import create_backbone
from oodbench.data.decode import BatchDecoder, RawDataset
from oodbench.data.sources import FileListSource
from oodbench.features.cache import FeatureCache
from oodbench.features.extract import extract_features


def test_extract_features_gpu_decode_on_cpu(tmp_path):
    rng = np.random.default_rng(0)
    img = tmp_path / "img"
    img.mkdir()
    names = []
    for i, (h, w) in enumerate([(60, 80), (90, 45), (32, 32), (75, 100), (50, 50)]):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ext = "png" if i == 1 else "jpg"
        Image.fromarray(a).save(img / f"{i}.{ext}")
        names.append(f"{i}.{ext}")
    (img / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    names.insert(3, "bad.jpg")
    source = FileListSource("mixed", img, names, np.arange(len(names)))
    bb = create_backbone("test_clip_tiny", "none")
    cache = FeatureCache(tmp_path / "cache")
    kw = dict(cache=cache, device="cpu", num_workers=0, batch_size=4)
    pil = extract_features(bb, source, {"image"}, **kw)
    gpu = extract_features(bb, source, {"image"}, decode="gpu", **kw)
    assert pil.meta["cache_key"] != gpu.meta["cache_key"]
    assert gpu.meta["decode"] == "gpu" and pil.meta["decode"] == "pil"
    assert gpu["labels"].tolist() == pil["labels"].tolist() == [0, 1, 2, 4, 5]
    assert [s["reason"] for s in gpu.meta["skipped"]] == [s["reason"] for s in pil.meta["skipped"]]
    # independent of the runner: the decoder's batch through the model
    dec = BatchDecoder(source, bb.preprocess(), "cpu")
    ds = RawDataset(source, dec.pre.host)
    x, idx, _ = dec([ds[i] for i in range(len(source))])
    with torch.inference_mode():
        ref = bb.compute_features(x, {"image"})["image"].numpy()
    np.testing.assert_allclose(gpu["image"], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gpu["image"][1], pil["image"][1], rtol=1e-5, atol=1e-5)  # the PNG: PIL path
    assert not np.allclose(gpu["image"], pil["image"], rtol=1e-6, atol=1e-6)  # resized JPEGs differ a little
    again = extract_features(bb, source, {"image"}, decode="gpu", **kw)
    assert again.meta["forward_batches"] == 0 and np.array_equal(again["image"], gpu["image"])


def test_run_records_the_decode_option(tmp_path):
    import oodbench
    from oodbench.data.adhoc import adhoc_benchmark

    rng = np.random.default_rng(1)
    for folder, n in (("id/cat", 3), ("id/dog", 3), ("ood/noise", 4)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.jpg")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    spec = adhoc_benchmark(tmp_path / "id", tmp_path / "classes.txt", {"noise": tmp_path / "ood/noise"})
    common = dict(backbone="test_clip_tiny", benchmark=spec, pretrained="none", post="mcm", device="cpu",
                  num_workers=0, results_root=tmp_path / "runs", cache_dir=tmp_path / "cache", quiet=True)
    gpu = oodbench.run(decode="gpu", **common)[0].record
    pil = oodbench.run(**common)[0].record
    assert gpu.backbone["preprocess"]["decode"] == "gpu" and "decode" not in pil.backbone["preprocess"]
    assert gpu.counts == pil.counts
    assert abs(gpu.metrics["average"]["auroc"] - pil.metrics["average"]["auroc"]) < 0.2
