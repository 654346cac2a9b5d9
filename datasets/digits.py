"""The embedded ``digits`` benchmark: built in memory from images that ship with scikit-learn and scikit-image.

It needs no data root and no download, so every command has a real benchmark to run on a laptop or in CI.
Every image is an 8x8 grid of 17 grey levels (the resolution of scikit-learn's ``load_digits``), upsampled
bilinearly to 32x32 and repeated over 3 channels; OOD images are shrunk to that grid first, so only the
content differs between ID and OOD, never the resolution, the value range or the interpolation.

===============  ======  ========================================================================
split            images  content
===============  ======  ========================================================================
ID test           300    digits 0-5, 50 per class (``load_digits``)
ID val            120    digits 0-5, 20 per class, held out of training (SeTAR search split)
ID train          663    the remaining digits 0-5: the training set of ``digits_clip``, and the
                         ``id_fit`` split postprocessors fit on (KNN bank, ReAct threshold, ...)
near: digits 6-9  320    80 per class of the held-out digits
far: textures     300    64-px patches of skimage ``grass``, ``gravel``, ``brick`` (100 each)
far: faces        200    skimage ``lfw_subset`` (100 faces, 100 non-face crops)
far: photos       300    64-px patches of skimage ``camera``, ``coins``, ``text``, ``page`` (75 each)
far: noise        300    uniform noise on the 8x8 grid
OOD val: photos   150    64-px patches of *other* photos: skimage ``astronaut``, ``chelsea``,
                         ``coffee``, ``rocket``, ``moon`` (30 each); for APS only
OOD val: noise    100    Gaussian noise on the 8x8 grid (uniform noise is the test set); APS only
===============  ======  ========================================================================

The OOD-val splits share no source image (and no noise distribution) with any OOD test split.

Shrinking an OOD image to the digit grid (:func:`to_digit_grid`): grey levels in [0, 1], area-average to 8x8
(``skimage.transform.resize_local_mean``), stretch to the full [0, 1] range (every digit spans 0..16), then
round to the 17 levels of ``load_digits``. Digits are only divided by 16. Both then go through
:func:`upsample`. Everything is seeded: two builds are byte-identical.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from oodbench.data.sources import ArraySource
from oodbench.datasets.base import BenchmarkSpec, ResolvedBenchmark, SplitSpec
from oodbench.registry import register

log = logging.getLogger("oodbench")

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ID_DIGITS = (0, 1, 2, 3, 4, 5)
NEAR_DIGITS = (6, 7, 8, 9)
CLASS_NAMES = tuple(DIGIT_WORDS[d] for d in ID_DIGITS)
PROMPT = "a photo of the digit {}."

SEED = 0
GRID = 8  # load_digits resolution
LEVELS = 16  # load_digits values are integers 0..16
IMAGE_SIZE = 32
PATCH = 64  # side of the patches cut from textures and photos

N_TEST, N_VAL = 50, 20  # per ID class
N_NEAR = 80  # per near-OOD class
N_NOISE, N_NOISE_VAL = 300, 100
TEXTURES = (("grass", 100), ("gravel", 100), ("brick", 100))
PHOTOS = (("camera", 75), ("coins", 75), ("text", 75), ("page", 75))
PHOTOS_VAL = (("astronaut", 30), ("chelsea", 30), ("coffee", 30), ("rocket", 30), ("moon", 30))

# Split keys of :func:`build_digits`, and the display names of the benchmark's splits.
ID_TEST, ID_VAL, ID_TRAIN = "id_test", "id_val", "id_train"
NEAR = "digits 6-9"
FAR = ("textures", "faces", "photos", "noise")
OOD_VAL = ("photos-val", "noise-val")


# --------------------------------------------------------------------------------------- pixels
def upsample(grid: np.ndarray) -> np.ndarray:
    """Bilinear 8x8 -> 32x32 upsampling (half-pixel centres, edge clamped), to uint8 RGB.

    Args:
        grid: ``[N, 8, 8]`` grey levels in [0, 1].

    Returns:
        ``uint8 [N, 32, 32, 3]``; the three channels are equal.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 3 or grid.shape[1:] != (GRID, GRID):
        raise ValueError(f"expected [N, {GRID}, {GRID}] grids, got {grid.shape}")
    a = _interp_matrix(GRID, IMAGE_SIZE)  # [32, 8]
    up = np.einsum("ij,njk,lk->nil", a, grid, a)
    up = np.clip(np.rint(up * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(up[..., None], 3, axis=-1)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` linear-interpolation weights, sample centres at ``(i + 0.5) * n_in / n_out - 0.5``."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def to_digit_grid(gray: np.ndarray) -> np.ndarray:
    """Shrink a grey image to the digits' 8x8 grid of 17 levels.

    Args:
        gray: ``[H, W]`` grey levels in [0, 1] (H, W >= 8).

    Returns:
        ``[8, 8]`` float64 with values in ``{0, 1/16, ..., 1}``, stretched to span [0, 1] (all 0 if constant).
    """
    from skimage.transform import resize_local_mean

    small = resize_local_mean(np.asarray(gray, dtype=np.float64), (GRID, GRID))
    lo, hi = small.min(), small.max()
    if hi - lo > 1e-6:  # a (nearly) constant image stays black rather than stretching float noise
        small = (small - lo) / (hi - lo)
    else:
        small = np.zeros_like(small)
    return np.rint(small * LEVELS) / LEVELS


def _patches(image: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` square ``PATCH``-px crops at seeded random positions of a grey ``[H, W]`` image."""
    h, w = image.shape
    ys = rng.integers(0, h - PATCH + 1, size=count)
    xs = rng.integers(0, w - PATCH + 1, size=count)
    return [image[y : y + PATCH, x : x + PATCH] for y, x in zip(ys, xs)]


def _gray(image: np.ndarray) -> np.ndarray:
    """skimage image (uint8 grey or RGB) -> float grey in [0, 1]."""
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    image = img_as_float(image)
    return rgb2gray(image) if image.ndim == 3 else image


def _photo_patches(names: tuple[tuple[str, int], ...], rng: np.random.Generator) -> np.ndarray:
    import skimage.data

    grids = [to_digit_grid(p) for name, n in names for p in _patches(_gray(getattr(skimage.data, name)()), n, rng)]
    return np.stack(grids)


# ---------------------------------------------------------------------------------------- build
@dataclass(frozen=True)
class DigitsData:
    """Every split of the benchmark: ``arrays[key] = (images uint8 [N, 32, 32, 3], labels int64 [N])``.

    Keys: ``id_test``, ``id_val``, ``id_train``, ``digits 6-9``, ``textures``, ``faces``, ``photos``,
    ``noise``, ``photos-val``, ``noise-val``. ``digit`` holds the original digit (0-9) of every digit image,
    and -1 elsewhere. Arrays are read-only (they are shared by the in-memory cache).
    """

    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    digit: dict[str, np.ndarray]
    source_index: dict[str, np.ndarray]  # index into load_digits() for digit splits

    def source(self, key: str) -> ArraySource:
        images, labels = self.arrays[key]
        return ArraySource(key, images, labels)


@lru_cache(maxsize=4)
def build_digits(seed: int = SEED) -> DigitsData:
    """Build every split (about 1 s, mostly imports). Cached per seed; two builds are byte-identical."""
    from skimage.data import lfw_subset
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    data = load_digits()
    grids, target = data.images / LEVELS, data.target.astype(np.int64)

    index: dict[str, list[int]] = {ID_TEST: [], ID_VAL: [], ID_TRAIN: [], NEAR: []}
    for d in ID_DIGITS:
        idx = rng.permutation(np.flatnonzero(target == d))
        index[ID_TEST] += idx[:N_TEST].tolist()
        index[ID_VAL] += idx[N_TEST : N_TEST + N_VAL].tolist()
        index[ID_TRAIN] += idx[N_TEST + N_VAL :].tolist()
    for d in NEAR_DIGITS:
        index[NEAR] += sorted(rng.permutation(np.flatnonzero(target == d))[:N_NEAR].tolist())

    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    digit: dict[str, np.ndarray] = {}
    source_index: dict[str, np.ndarray] = {}
    for key, idx in index.items():
        idx_arr = np.asarray(idx, dtype=np.int64)
        digits = target[idx_arr]
        labels = np.array([ID_DIGITS.index(x) for x in digits], dtype=np.int64) if key != NEAR else -np.ones(len(idx), np.int64)
        arrays[key] = (upsample(grids[idx_arr]), labels)
        digit[key], source_index[key] = digits, idx_arr

    far = {
        "textures": _photo_patches(TEXTURES, rng),
        "faces": np.stack([to_digit_grid(x) for x in lfw_subset()]),
        "photos": _photo_patches(PHOTOS, rng),
        "noise": np.stack([to_digit_grid(x) for x in rng.random((N_NOISE, GRID, GRID))]),
        "photos-val": _photo_patches(PHOTOS_VAL, rng),
        "noise-val": np.stack([to_digit_grid(x) for x in np.clip(rng.normal(0.5, 0.2, (N_NOISE_VAL, GRID, GRID)), 0, 1)]),
    }
    for key, g in far.items():
        arrays[key] = (upsample(g), -np.ones(len(g), np.int64))
        digit[key] = -np.ones(len(g), np.int64)
    for images, labels in arrays.values():
        images.setflags(write=False)
        labels.setflags(write=False)
    return DigitsData(arrays, digit, source_index)


# ----------------------------------------------------------------------------------------- spec
def _split(name: str, key: str, n: int, group: str, source: str) -> SplitSpec:
    return SplitSpec(name=name, path=f"embedded:digits/{key}", format="array", expected=n, group=group, source=source)


_SK = "scikit-learn load_digits (UCI optdigits)"


@dataclass(frozen=True)
class EmbeddedBenchmarkSpec(BenchmarkSpec):
    """A benchmark whose images are built in memory by code (no data root). ``resolve()`` gives its sources."""

    def resolve(self, data_root=None, on_bad: str = "skip") -> ResolvedBenchmark:  # noqa: ARG002 - nothing to read
        return resolve_digits()


DIGITS = EmbeddedBenchmarkSpec(
    name="digits",
    description="Embedded benchmark: handwritten digits 0-5 (ID) vs 6-9 (near) and textures/faces/photos/noise "
    "(far), 32 px, built offline from scikit-learn and scikit-image",
    id_test=_split("digits 0-5 (test)", ID_TEST, len(ID_DIGITS) * N_TEST, "id", _SK),
    id_val=_split("digits 0-5 (val)", ID_VAL, len(ID_DIGITS) * N_VAL, "id", _SK),
    id_fit=_split("digits 0-5 (train)", ID_TRAIN, 663, "id", _SK),
    ood=(
        _split(NEAR, NEAR, len(NEAR_DIGITS) * N_NEAR, "near", _SK),
        _split("textures", "textures", 300, "far", "scikit-image grass, gravel, brick (64-px patches)"),
        _split("faces", "faces", 200, "far", "scikit-image lfw_subset"),
        _split("photos", "photos", 300, "far", "scikit-image camera, coins, text, page (64-px patches)"),
        _split("noise", "noise", N_NOISE, "far", "uniform noise"),
    ),
    ood_val=(
        _split("photos-val", "photos-val", 150, "far", "scikit-image astronaut, chelsea, coffee, rocket, moon"),
        _split("noise-val", "noise-val", N_NOISE_VAL, "far", "Gaussian noise"),
    ),
    class_names=CLASS_NAMES,
    prompt=PROMPT,
    family="digits",
    default_backbone="digits_clip",
    # NegLabel is left out: its general English words mean nothing to the tiny digits CLIP (97% FPR95), and its
    # mining would be most of the demo's time. It still runs with --post neglabel.
    default_postprocessors=("mcm", "glmcm", "energy", "maxlogit"),
)


@register("benchmarks", "digits")
def digits_benchmark() -> EmbeddedBenchmarkSpec:
    """Embedded digits benchmark (offline, 32 px): ID digits 0-5, near-OOD 6-9, far-OOD textures/faces/photos/noise."""
    return DIGITS


def resolve_digits(seed: int = SEED) -> ResolvedBenchmark:
    """Every split of :data:`DIGITS` as :class:`~oodbench.data.sources.ArraySource` (built once, then cached)."""
    data = build_digits(seed)
    spec = DIGITS

    def src(split: SplitSpec) -> ArraySource:
        key = split.path.split("/", 1)[1]
        s = data.source(key)
        s.name = split.name
        if split.expected is not None and len(s) != split.expected:
            raise RuntimeError(f"digits benchmark: split {split.name} has {len(s)} images, expected {split.expected}")
        return s

    resolved = ResolvedBenchmark(
        spec=spec,
        id_test=src(spec.id_test),
        id_val=src(spec.id_val),
        id_fit=src(spec.id_fit),
        ood={s.name: src(s) for s in spec.ood},
        ood_val={s.name: src(s) for s in spec.ood_val},
    )
    for role, split in spec.split_specs():
        n = split.expected
        resolved.counts[split.name] = {"role": str(role), "group": split.group, "expected": n, "listed": n, "found": n, "missing": 0}
    return resolved
