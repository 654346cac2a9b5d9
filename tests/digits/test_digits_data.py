"""The embedded digits benchmark: sizes, disjoint splits, determinism, and one pixel pipeline for every image."""

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from oodbench.datasets import digits as dg

EXPECTED = {
    "id_test": 300, "id_val": 120, "id_train": 663, "digits 6-9": 320,
    "textures": 300, "faces": 200, "photos": 300, "noise": 300, "photos-val": 150, "noise-val": 100,
}


def _rows(images: np.ndarray) -> set[bytes]:
    return {im.tobytes() for im in images}


def _reference_upsample(levels: np.ndarray) -> np.ndarray:
    """PIL's bilinear resize of a float image (an independent implementation of the same interpolation)."""
    grid = levels.astype(np.float32) / 16
    out = np.asarray(Image.fromarray(grid, mode="F").resize((32, 32), Image.BILINEAR))
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _recover_grid(image: np.ndarray) -> np.ndarray:
    """The 17-level 8x8 grid (integers 0..16) an upsampled image was made from (least squares, then rounded)."""
    a = np.zeros((32, 8))
    for i in range(32):  # straightforward bilinear weights, half-pixel centres, edges clamped
        p = min(max((i + 0.5) / 4 - 0.5, 0.0), 7.0)
        lo = int(np.floor(p))
        hi = min(lo + 1, 7)
        a[i, lo] += 1 - (p - lo)
        a[i, hi] += p - lo
    pinv = np.linalg.pinv(a)
    g = pinv @ (image[..., 0].astype(np.float64) / 255.0) @ pinv.T
    return np.rint(np.clip(g, 0, 1) * 16).astype(np.int64)


def test_split_sizes_labels_and_shapes(digits_data):
    assert {k: len(v[0]) for k, v in digits_data.arrays.items()} == EXPECTED
    for key, (images, labels) in digits_data.arrays.items():
        assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
        assert np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])
        if key.startswith("id_"):
            per_class = {"id_test": 50, "id_val": 20}.get(key)
            counts = np.bincount(labels, minlength=6)
            assert len(counts) == 6 and (per_class is None or (counts == per_class).all())
            # labels are the digit itself for the ID digits 0-5
            assert np.array_equal(labels, digits_data.digit[key])
        else:
            assert (labels == -1).all()
    assert set(digits_data.digit["digits 6-9"].tolist()) == {6, 7, 8, 9}
    assert np.bincount(digits_data.digit["digits 6-9"])[6:].tolist() == [80, 80, 80, 80]


def test_id_splits_are_disjoint_and_cover_digits_0_to_5(digits_data):
    from sklearn.datasets import load_digits

    target = load_digits().target
    idx = {k: set(digits_data.source_index[k].tolist()) for k in ("id_test", "id_val", "id_train", "digits 6-9")}
    keys = list(idx)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not idx[a] & idx[b], (a, b)
    id_all = idx["id_test"] | idx["id_val"] | idx["id_train"]
    assert id_all == set(np.flatnonzero(target <= 5).tolist())  # val held out of train, nothing lost


def test_ood_val_is_disjoint_from_ood_test(digits_data):
    test_keys = ["digits 6-9", *dg.FAR]
    test_pixels = set().union(*(_rows(digits_data.arrays[k][0]) for k in test_keys))
    id_pixels = set().union(*(_rows(digits_data.arrays[k][0]) for k in ("id_test", "id_val", "id_train")))
    for key in dg.OOD_VAL:
        val_pixels = _rows(digits_data.arrays[key][0])
        assert not val_pixels & test_pixels, key
        assert not val_pixels & id_pixels, key
    # and the source photos differ
    assert not {n for n, _ in dg.PHOTOS_VAL} & {n for n, _ in dg.PHOTOS + dg.TEXTURES}


def test_two_builds_are_byte_identical_and_the_seed_matters():
    a = dg.build_digits.__wrapped__(0)
    b = dg.build_digits.__wrapped__(0)
    for key in a.arrays:
        assert a.arrays[key][0].tobytes() == b.arrays[key][0].tobytes(), key
        assert a.arrays[key][1].tobytes() == b.arrays[key][1].tobytes(), key
    c = dg.build_digits.__wrapped__(1)
    assert a.arrays["id_test"][0].tobytes() != c.arrays["id_test"][0].tobytes()
    assert a.arrays["textures"][0].tobytes() != c.arrays["textures"][0].tobytes()


def test_upsample_matches_pil_bilinear():
    rng = np.random.default_rng(3)
    grids = rng.integers(0, 17, size=(20, 8, 8))
    ours = dg.upsample(grids)[..., 0]
    ref = np.stack([_reference_upsample(g) for g in grids])
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_to_digit_grid_is_block_mean_stretch_quantise():
    rng = np.random.default_rng(4)
    patch = rng.integers(0, 256, size=(64, 64)) ** 2
    block = patch.reshape(8, 8, 8, 8).sum(axis=(1, 3))  # integer block sums: exact
    num, den = 16 * (block - block.min()), block.max() - block.min()
    ref = np.array([round(Fraction(int(n), int(den))) for n in num.ravel()]).reshape(8, 8)  # ties to even
    assert np.array_equal(dg.to_digit_grid(patch), ref)
    assert dg.to_digit_grid(patch).dtype == np.uint8
    assert np.array_equal(dg.to_digit_grid(np.full((25, 25), 77)), np.zeros((8, 8)))


def test_every_image_is_an_upsampled_17_level_8x8_grid(digits_data):
    """Digits and every OOD image went through the same 8x8 grid and the same upsampling."""
    from sklearn.datasets import load_digits

    raw = load_digits().images
    for key, (images, _) in digits_data.arrays.items():
        for image in images[:: max(1, len(images) // 40)]:
            g = _recover_grid(image)
            assert np.array_equal(dg.upsample(g[None])[0], image), key
            assert np.abs(_reference_upsample(g).astype(int) - image[..., 0]).max() <= 1, key
            if not key.startswith("id_") and key != "digits 6-9" and g.max() > 0:
                assert g.min() == 0 and g.max() == 16, key  # stretched to the digits' full range
    for key in ("id_test", "digits 6-9"):
        images, _ = digits_data.arrays[key]
        src = digits_data.source_index[key]
        assert all(np.array_equal(_recover_grid(im), raw[i]) for im, i in zip(images, src))


def test_benchmark_spec_resolves_without_data_root():
    from oodbench.datasets import get_benchmark, resolve
    from oodbench.data.sources import ArraySource

    spec = get_benchmark("digits")
    assert spec.name == "digits" and not spec.needs_data_root
    assert spec.class_names == ("zero", "one", "two", "three", "four", "five")
    assert spec.prompt.format("three") == "a photo of the digit three."
    r = resolve(spec)
    sources = [r.id_test, r.id_val, r.id_fit, *r.ood.values(), *r.ood_val.values()]
    assert all(isinstance(s, ArraySource) for s in sources)
    assert len(r.id_test) == 300 and len(r.id_val) == 120 and len(r.id_fit) == 663
    assert {k: len(v) for k, v in r.ood.items()} == {"digits 6-9": 320, "textures": 300, "faces": 200, "photos": 300, "noise": 300}
    assert r.groups == {"digits 6-9": "near", "textures": "far", "faces": "far", "photos": "far", "noise": "far"}
    assert set(r.ood_val) == {"photos-val", "noise-val"}
    img = r.id_test.load(0)
    assert img.size == (32, 32) and img.mode == "RGB"
    assert r.id_test.fingerprint() == resolve(spec).id_test.fingerprint()


@pytest.mark.parametrize("key", ["id_test", "textures"])
def test_cached_arrays_are_read_only(digits_data, key):
    images, labels = digits_data.arrays[key]
    with pytest.raises(ValueError):
        images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        labels[0] = 1
