"""A small in-memory benchmark (slices of the embedded digits splits) and a tiny CLIP, for pipeline tests."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from oodbench.backbones import create_backbone
from oodbench.data.sources import ArraySource
from oodbench.datasets.digits import resolve_digits


def _cut(src: ArraySource, n: int) -> ArraySource:
    """``n`` images spread evenly over the split (the splits are sorted by class: every class is kept)."""
    idx = np.linspace(0, len(src) - 1, n).round().astype(int)
    return ArraySource(src.name, src.images[idx], src.labels[idx])


@pytest.fixture(scope="session")
def small_digits():
    full = resolve_digits()
    small = dataclasses.replace(
        full,
        id_test=_cut(full.id_test, 48),
        id_val=_cut(full.id_val, 24),
        id_fit=_cut(full.id_fit, 30) if full.id_fit is not None else None,
        ood={name: _cut(src, 20) for name, src in list(full.ood.items())[:3]},
        ood_val={name: _cut(src, 12) for name, src in full.ood_val.items()},
    )
    return small


@pytest.fixture()
def tiny_clip():
    return create_backbone("test_clip_tiny")


@pytest.fixture()
def folders(tmp_path, small_digits):
    """An ad-hoc benchmark as image folders: ID test and val by class (6 classes), one OOD folder, classes.txt."""
    def dump(src, folder, n, by_class):
        for i in range(n):
            sub = folder / (f"digit {src.labels[i]}" if by_class else "images")
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(src.images[i]).save(sub / f"{i:03d}.png")

    dump(small_digits.id_test, tmp_path / "id_test", 48, True)
    dump(small_digits.id_val, tmp_path / "id_val", 24, True)
    name, ood = next(iter(small_digits.ood.items()))
    dump(ood, tmp_path / "ood", 16, False)
    labels = sorted({int(x) for x in small_digits.id_test.labels} | {int(x) for x in small_digits.id_val.labels})
    assert len(labels) == 6
    (tmp_path / "classes.txt").write_text("\n".join(f"digit {k}" for k in labels) + "\n")
    return tmp_path
