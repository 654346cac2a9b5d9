"""A small in-memory benchmark (slices of the embedded digits splits) and a tiny CLIP, for pipeline tests."""

import dataclasses

import pytest

from oodbench.backbones import create_backbone
from oodbench.data.sources import ArraySource
from oodbench.datasets.digits import resolve_digits


def _cut(src: ArraySource, n: int) -> ArraySource:
    return ArraySource(src.name, src.images[:n], src.labels[:n])


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
