"""The batched decoding path (``decode="gpu"``), run on the CPU: pixels against the PIL path and a plain
re-implementation, the per-file fallback, order, and the options it refuses."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

from oodbench.data import decode as D
from oodbench.data.loader import SourceDataset, collate
from oodbench.data.sources import FileListSource
from oodbench.errors import UserError

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def to_rgb(image):
    return image.convert("RGB")


def clip_transform(size=224, interpolation=T.InterpolationMode.BICUBIC):
    """The CLIP backbones' preprocessing (oodbench.backbones.clip.ClipBackbone.preprocess)."""
    return T.Compose([T.Resize(size, interpolation=interpolation), T.CenterCrop(size), to_rgb, T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def photo(h, w, seed=0, grey=False):
    """Smooth colour patterns plus noise: something a JPEG codec and a resize kernel both have work with."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([128 + 100 * np.sin(xx / 17 + seed) * np.cos(yy / 23), 128 + 80 * np.sin((xx + yy) / 31),
                  128 + 60 * np.cos(xx / 7)], -1) + rng.normal(0, 20, (h, w, 3))
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return im.convert("L") if grey else im


def write(folder, name, image, **kw):
    path = folder / name
    image.save(path, **kw)
    return name


def reference(path, transform_size=224, mode="bicubic"):
    """Plain re-implementation of the fast path on the CPU: PIL decode (the same libjpeg), float antialiased
    resize of the short side, round, clip, centre crop, /255, -mean, /std."""
    a = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float()[None]
    h, w = a.shape[-2:]
    if h <= w:
        size = (transform_size, int(transform_size * w / h))
    else:
        size = (int(transform_size * h / w), transform_size)
    if size != (h, w):
        a = F.interpolate(a, size=size, mode=mode, antialias=True, align_corners=False).round().clamp(0, 255)
    top, left = int(round((size[0] - transform_size) / 2.0)), int(round((size[1] - transform_size) / 2.0))
    a = a[0, :, top:top + transform_size, left:left + transform_size] / 255
    return (a - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


@pytest.fixture
def jpegs(tmp_path):
    names = [write(tmp_path, "a.jpg", photo(375, 500, 1), quality=90),
             write(tmp_path, "b.jpg", photo(500, 333, 2), quality=75),
             write(tmp_path, "c.jpg", photo(224, 224, 3), quality=95),            # no resize
             write(tmp_path, "d.jpg", photo(100, 80, 4), quality=90),             # upsampled
             write(tmp_path, "e.jpg", photo(300, 400, 5, grey=True), quality=90),  # one component
             write(tmp_path, "f.jpg", photo(480, 640, 6), quality=85, progressive=True)]
    return FileListSource("jpegs", tmp_path, names, np.zeros(len(names), np.int64))


def run_decoder(source, transform, indices=None):
    dec = D.BatchDecoder(source, transform, "cpu")
    ds = D.RawDataset(source, dec.pre.host)
    return dec, dec([ds[i] for i in (range(len(source)) if indices is None else indices)])


def test_jpeg_components(tmp_path):
    def comps(image, fmt, **kw):
        b = io.BytesIO()
        image.save(b, fmt, **kw)
        return D.jpeg_components(b.getvalue())

    im = photo(40, 50)
    assert comps(im, "JPEG") == 3
    assert comps(im, "JPEG", progressive=True) == 3
    assert comps(im.convert("L"), "JPEG") == 1
    assert comps(im.convert("CMYK"), "JPEG") == 4
    assert comps(im, "PNG") is None
    assert D.jpeg_components(b"\xff\xd8\xff\xe0\x00") is None  # header cut short
    assert D.jpeg_components(b"not an image") is None


def test_fast_path_equals_plain_reimplementation(jpegs):
    _, (x, idx, bad) = run_decoder(jpegs, clip_transform())
    assert bad == [] and idx.tolist() == list(range(len(jpegs)))
    for i in range(len(jpegs)):
        torch.testing.assert_close(x[i], reference(jpegs.path(i)), atol=1e-6, rtol=0)


def test_pixel_difference_to_pil_path_is_small(jpegs):
    """Measured: at most a few 8-bit levels, about 0.15 levels on average (resize kernel rounding); the 224x224
    image, which is not resized, is identical."""
    tf = clip_transform()
    dec, (x, _, _) = run_decoder(jpegs, tf)
    pil = torch.stack([tf(jpegs.load(i)) for i in range(len(jpegs))])
    levels = ((x - pil) * torch.tensor(STD).view(1, 3, 1, 1) * 255).abs()
    assert levels[2].max() < 1e-3
    assert 0.5 < levels.max() <= 8
    assert 0.01 < levels.mean() < 0.3
    assert dec.fallbacks == 0


def test_fallback_per_file_and_order(tmp_path, monkeypatch):
    names = [write(tmp_path, "0.jpg", photo(300, 400, 0), quality=90),
             write(tmp_path, "1.png", photo(300, 400, 1)),                              # not a JPEG
             write(tmp_path, "2.jpg", photo(300, 400, 2).convert("CMYK"), quality=90),  # 4 components
             write(tmp_path, "3.jpg", photo(200, 260, 3), quality=90),
             "4-missing.jpg"]
    (tmp_path / "5.jpg").write_bytes((tmp_path / "3.jpg").read_bytes()[:900])            # truncated JPEG
    (tmp_path / "6.jpg").write_text("not an image")
    names += ["5.jpg", "6.jpg", write(tmp_path, "7.jpg", photo(260, 200, 7), quality=90)]
    rejected = (tmp_path / "7.jpg").read_bytes()  # the decoder "cannot" decode this one: PIL takes it
    from torchvision import io as tvio

    real = tvio.decode_jpeg

    def picky(blobs, **kw):
        if any(bytes(b.numpy()) == rejected for b in blobs):
            raise RuntimeError("unsupported JPEG")
        return real(blobs, **kw)

    monkeypatch.setattr(tvio, "decode_jpeg", picky)
    source = FileListSource("mixed", tmp_path, names, np.arange(len(names)))
    tf = clip_transform()
    dec, (x, idx, bad) = run_decoder(source, tf)
    assert idx.tolist() == [0, 1, 2, 3, 7]
    assert [i for i, _ in bad] == [4, 5, 6]
    assert bad[0][1] == "file not found" and "truncated" in bad[1][1] and "not an image" in bad[2][1]
    assert dec.fallbacks == 3
    for row, i in enumerate(idx.tolist()):
        if i in (1, 2, 7):  # PIL path: identical to the official preprocessing
            torch.testing.assert_close(x[row], tf(source.load(i)), atol=1e-6, rtol=0)
        else:
            torch.testing.assert_close(x[row], reference(source.path(i)), atol=1e-6, rtol=0)


def test_loader_keeps_chunks_and_matches_decoder(jpegs):
    chunks = [[0, 1, 2], [3, 4], [5]]
    tf = clip_transform()
    out = list(D.make_loader(jpegs, tf, decode="gpu", device="cpu", batch_sampler=chunks, num_workers=1))
    assert [o[1].tolist() for o in out] == chunks
    _, (x, _, _) = run_decoder(jpegs, tf)
    torch.testing.assert_close(torch.cat([o[0] for o in out]), x, atol=0, rtol=0)
    pil = list(D.make_loader(jpegs, tf, decode="pil", device="cpu", batch_sampler=chunks))
    ref = torch.utils.data.DataLoader(SourceDataset(jpegs, tf), batch_sampler=chunks, collate_fn=collate)
    for (a, ia, _), (b, ib, _) in zip(pil, ref):
        assert torch.equal(a, b) and torch.equal(ia, ib)


def test_classifier_crop_pct_transform(tmp_path):
    """timm's eval transform (resize to size / crop_pct, then crop) is copied too."""
    from oodbench.backbones import create_backbone

    tf = create_backbone("test_resnet_tiny", "none").preprocess()
    names = [write(tmp_path, "a.jpg", photo(375, 500, 1), quality=90)]
    source = FileListSource("one", tmp_path, names, np.zeros(1, np.int64))
    _, (x, _, _) = run_decoder(source, tf)
    pil = tf(source.load(0))
    assert x.shape[1:] == pil.shape
    assert (x[0] - pil).abs().mean() < 0.01


def test_refusals():
    with pytest.raises(UserError, match="decode must be one of pil, gpu"):
        D.check_decode("nvjpeg")
    with pytest.raises(UserError, match="RandomResizedCrop"):
        D.DevicePreprocess.from_transform(T.Compose([T.RandomResizedCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)]))
    with pytest.raises(UserError, match="ToTensor"):
        D.DevicePreprocess.from_transform(T.Compose([T.Resize(32), T.ToTensor()]))


def test_decode_identity_in_cache_key():
    from oodbench.features.cache import key_ingredients

    assert D.decode_identity("pil", "cuda") is None
    assert D.decode_identity("gpu", "cuda")["jpeg"] == "nvjpeg"
    assert D.decode_identity("gpu", "cpu")["jpeg"] == "libjpeg"

    class B:
        name, version = "b", None

        def weights_hash(self):
            return "w"

        def preprocess_config(self):
            return {"resize": 32}

    src = FileListSource("s", ".", [], np.zeros(0, np.int64), _fingerprint="f")
    plain = key_ingredients(B(), "none", src, "fp32")
    assert key_ingredients(B(), "none", src, "fp32", decode="pil", device="cuda") == plain and "decode" not in plain
    gpu = key_ingredients(B(), "none", src, "fp32", decode="gpu", device="cuda")
    assert gpu["decode"] == D.decode_identity("gpu", "cuda") and gpu != plain
