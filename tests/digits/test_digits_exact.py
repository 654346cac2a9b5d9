"""The digits pixels are exact: integer arithmetic checked against exact rationals (``fractions.Fraction``), no
float reaching the quantisation, and the same bytes whatever numpy's SIMD dispatch or OpenBLAS's kernels are."""

import json
import os
import platform
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from oodbench.datasets import digits as dg


# ----------------------------------------------------------------------------------- exact references
def _round(x: Fraction) -> int:
    return round(x)  # Fraction.__round__: nearest integer, ties to even


def _overlap(a0, a1, b0, b1) -> Fraction:
    return max(Fraction(0), min(a1, b1) - max(a0, b0))


def _reference_grid(grey: list[list[Fraction]]) -> np.ndarray:
    """Area means on the 8x8 grid, stretch, quantise -- all in rationals, intervals in source-pixel units."""
    h, w = len(grey), len(grey[0])
    ch, cw = Fraction(h, 8), Fraction(w, 8)

    def cover(j, c, n):  # source pixels overlapping output cell j, with the overlap length
        return [(y, _overlap(j * c, (j + 1) * c, y, y + 1)) for y in range(n) if _overlap(j * c, (j + 1) * c, y, y + 1)]

    rows, cols = [cover(j, ch, h) for j in range(8)], [cover(k, cw, w) for k in range(8)]
    means = [[sum(a * b * grey[y][x] for y, a in rows[j] for x, b in cols[k]) / (ch * cw) for k in range(8)]
             for j in range(8)]
    flat = [m for row in means for m in row]
    lo, hi = min(flat), max(flat)
    if hi == lo:
        return np.zeros((8, 8), np.int64)
    return np.array([[_round(16 * (m - lo) / (hi - lo)) for m in row] for row in means], np.int64)


def _reference_upsample(levels: np.ndarray) -> np.ndarray:
    """Bilinear 8 -> 32 in rationals (half-pixel centres, clamped edges), pixel = round(255 * value / 16)."""
    def taps(i):
        p = min(max((Fraction(2 * i + 1, 2) * 8 / 32) - Fraction(1, 2), Fraction(0)), Fraction(7))
        lo = int(p)
        return [(lo, 1 - (p - lo)), (min(lo + 1, 7), p - lo)]

    out = np.zeros((32, 32), np.int64)
    for i in range(32):
        for j in range(32):
            v = sum(wa * wb * int(levels[a, b]) for a, wa in taps(i) for b, wb in taps(j))
            out[i, j] = _round(255 * v / 16)
    return out


def _fraction_grey(image: np.ndarray) -> list[list[Fraction]]:
    """uint8 grey or RGB -> rational grey in [0, 1] with rgb2gray's decimal weights."""
    wts = (Fraction("0.2125"), Fraction("0.7154"), Fraction("0.0721"))
    if image.ndim == 2:
        return [[Fraction(int(v), 255) for v in row] for row in image]
    return [[sum(wt * int(c) for wt, c in zip(wts, px)) / 255 for px in row] for row in image]


# -------------------------------------------------------------------------------------------- tests
def test_round_half_even_is_exact_rounding():
    rng = np.random.default_rng(0)
    num = rng.integers(-10**12, 10**12, size=400)
    for den in (1, 2, 7, 64, 1024, 99991):
        ref = [_round(Fraction(int(n), den)) for n in num]
        assert dg.round_half_even(num, den).tolist() == ref
    assert dg.round_half_even(np.array([1, 3, 5, -1, -3]), 2).tolist() == [0, 2, 2, 0, -2]
    with pytest.raises(TypeError):
        dg.round_half_even(np.array([0.5]), 1)


def test_quantise_rounds_ties_to_even_and_refuses_floats():
    # block means 0, 18, 22, 26, 64 of a 64-px patch: 16 * m / 64 = 0, 4.5, 5.5, 6.5, 16
    patch = np.zeros((64, 64), np.uint8)
    for k, v in enumerate((0, 18, 22, 26, 64)):
        patch[:8, 8 * k : 8 * k + 8] = v
    grid = dg.to_digit_grid(dg.integer_grey(patch))
    assert grid[0, :5].tolist() == [0, 4, 6, 6, 16]
    assert np.array_equal(grid, _reference_grid(_fraction_grey(patch)))
    for bad in (np.zeros((8, 8)), np.zeros((8, 8), np.float32)):
        with pytest.raises(TypeError, match="integer"):
            dg.quantise(bad)
        with pytest.raises(TypeError, match="integer"):
            dg.upsample(bad[None])
        with pytest.raises(TypeError, match="integer"):
            dg.area_sums(bad)


@pytest.mark.parametrize("shape", [(64, 64), (25, 25), (13, 9)])
def test_to_digit_grid_matches_exact_rationals(shape):
    rng = np.random.default_rng(shape[0])
    for _ in range(3):
        image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
        assert np.array_equal(dg.to_digit_grid(dg.integer_grey(image)), _reference_grid(_fraction_grey(image)))
        grey = image[..., 0]
        assert np.array_equal(dg.to_digit_grid(dg.integer_grey(grey)), _reference_grid(_fraction_grey(grey)))


def test_real_photo_patches_match_exact_rationals():
    import skimage.data

    for name, (y, x) in (("camera", (100, 200)), ("astronaut", (300, 40)), ("coffee", (17, 333))):
        patch = getattr(skimage.data, name)()[y : y + 64, x : x + 64]
        assert np.array_equal(dg.to_digit_grid(dg.integer_grey(patch)), _reference_grid(_fraction_grey(patch))), name


def test_integer_steps_agree_with_the_float_library_functions():
    """Integer grey and area sums are rgb2gray and resize_local_mean up to a constant (float rounding aside)."""
    from skimage.color import rgb2gray
    from skimage.transform import resize_local_mean

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(25, 40, 3), dtype=np.uint8)
    grey = dg.integer_grey(rgb)
    assert np.allclose(grey / (255 * dg.GREY_SCALE), rgb2gray(rgb), rtol=0, atol=1e-12)
    for image in (grey, dg.integer_grey(rgb[:, :, 1]), grey[:8, :8]):
        sums = dg.area_sums(image)
        wr, wc = dg.area_weights(image.shape[0], 8), dg.area_weights(image.shape[1], 8)
        means = sums / (wr.sum(axis=1)[:, None] * wc.sum(axis=1)[None, :])
        assert np.allclose(means, resize_local_mean(image.astype(np.float64), (8, 8)), rtol=1e-12, atol=0)


def test_upsample_matches_exact_rationals_ties_included():
    rng = np.random.default_rng(2)
    grids = np.concatenate([rng.integers(0, 17, size=(6, 8, 8)), np.full((1, 8, 8), 8)])  # 255 * 8 / 16 = 127.5
    ours = dg.upsample(grids)
    for g, img in zip(grids, ours):
        assert np.array_equal(img[..., 0], _reference_upsample(g))
    assert (ours[-1] == 128).all()  # the tie goes to the even neighbour


def test_fixed_point_is_exact_and_lossless_for_generator_floats():
    x = np.random.default_rng(5).random(1000)
    ints = dg.fixed_point(x, 53)
    assert np.array_equal(ints.astype(np.float64) / 2**53, x)  # nothing lost
    assert dg.fixed_point(np.array([0.5, 1.0, 0.0]), 4).tolist() == [8, 16, 0]
    with pytest.raises(ValueError):
        dg.fixed_point(np.array([1.5]), 8)


def test_no_float_reaches_the_quantisation(monkeypatch):
    """A build records the dtypes reaching quantise and upsample, and never calls skimage's float resamplers."""
    import skimage.color
    import skimage.transform

    seen: dict[str, set[str]] = {"quantise": set(), "area_sums": set(), "upsample": set()}
    for name in seen:
        original = getattr(dg, name)

        def spy(x, _name=name, _original=original):
            seen[_name].add(np.asarray(x).dtype.name)
            return _original(x)

        monkeypatch.setattr(dg, name, spy)

    def forbidden(*args, **kwargs):
        raise AssertionError("a float library function was called by the digits build")

    monkeypatch.setattr(skimage.color, "rgb2gray", forbidden)
    monkeypatch.setattr(skimage.transform, "resize_local_mean", forbidden)
    built = dg.build_digits.__wrapped__(0)
    for name, dtypes in seen.items():
        assert dtypes and all(np.issubdtype(np.dtype(d), np.integer) for d in dtypes), (name, dtypes)
    cached = dg.build_digits(0)
    for key in cached.arrays:
        assert built.arrays[key][0].tobytes() == cached.arrays[key][0].tobytes(), key


# --------------------------------------------------------------------------- independence of the CPU paths
_CHILD = """
import json, sys
from numpy._core import _multiarray_umath as mu
from oodbench.datasets.digits import build_digits
from threadpoolctl import threadpool_info
d = build_digits()
json.dump({"fingerprints": {k: d.source(k).fingerprint() for k in d.arrays},
           "features": {k: bool(v) for k, v in mu.__cpu_features__.items()},
           "blas": sorted({str(i.get("architecture")) for i in threadpool_info()
                           if i.get("internal_api") == "openblas"})},
          sys.stdout)
"""


def _blas_architectures() -> list[str]:
    from threadpoolctl import threadpool_info

    return sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})


def _other_openblas_core(current: list[str]) -> str | None:
    """An OpenBLAS core type other than the one in use (x86-64 only: the names are x86 microarchitectures)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not current:
        return None
    return "Sandybridge" if "Haswell" in current else "Haswell"


def test_pixels_do_not_depend_on_simd_dispatch_or_blas_kernels(digits_data):
    """Build the benchmark in a child process with numpy's widest SIMD targets switched off (the ones present on
    this CPU) and, on x86-64, another OpenBLAS kernel set and one thread; the fingerprints must be equal.

    (The float construction failed the BLAS half of this: with ``OPENBLAS_CORETYPE=Haswell`` on an AVX-512
    machine, ``resize_local_mean``'s ``tensordot`` rounded differently and ``photos-val`` changed.)
    """
    from numpy._core import _multiarray_umath as mu

    present = [f for f in mu.__cpu_dispatch__ if mu.__cpu_features__.get(f)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if present:
        env["NPY_DISABLE_CPU_FEATURES"] = ",".join(present)
    core = _other_openblas_core(_blas_architectures())
    if core:
        env["OPENBLAS_CORETYPE"] = core
    run = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    child = json.loads(run.stdout)
    assert not [f for f in present if child["features"].get(f)], "the SIMD targets were not switched off"
    if core:
        assert child["blas"] != _blas_architectures(), "OPENBLAS_CORETYPE had no effect"
    here = {k: digits_data.source(k).fingerprint() for k in digits_data.arrays}
    differ = {k: (here[k], child["fingerprints"].get(k)) for k in here if here[k] != child["fingerprints"].get(k)}
    assert not differ, f"splits differ with {env.get('NPY_DISABLE_CPU_FEATURES')=}, {core=}: {differ}"
