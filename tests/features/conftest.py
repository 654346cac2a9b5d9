"""Fixtures for the feature tests: tiny registered backbones, image sources, forward-call counters."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oodbench.backbones import create_backbone
from oodbench.data.readers import read_imagefolder
from oodbench.data.sources import ArraySource


@pytest.fixture
def clip():
    return create_backbone("test_clip_tiny")


@pytest.fixture
def resnet():
    return create_backbone("test_resnet_tiny")


@pytest.fixture
def array_source():
    """37 random 40-px RGB images with labels 0..2 (an odd count so that batches and shards are uneven)."""
    rng = np.random.default_rng(0)
    return ArraySource("arrays", rng.integers(0, 256, (37, 40, 40, 3), dtype=np.uint8), rng.integers(0, 3, 37))


@pytest.fixture
def file_source(tmp_path):
    """13 image files in 2 class folders (JPEG and PNG, various sizes)."""
    rng = np.random.default_rng(1)
    for i in range(13):
        folder = tmp_path / "imgs" / ("a" if i % 3 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        size = int(rng.integers(30, 70))
        arr = rng.integers(0, 256, (size, size + 5, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:02d}.{'png' if i % 2 else 'jpg'}")
    return read_imagefolder(tmp_path / "imgs", "files")


@pytest.fixture
def bad_files():
    """``bad_files(folder) -> [paths]``: a zero-byte, a truncated, a corrupt and a non-image file."""

    def make(folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        zero = folder / "00_zero.jpg"
        zero.write_bytes(b"")
        buf = folder / "full.jpg"
        Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf)
        data = buf.read_bytes()
        buf.unlink()
        trunc = folder / "01_truncated.jpg"
        trunc.write_bytes(data[: len(data) // 2])
        corrupt = folder / "02_corrupt.png"
        corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        text = folder / "03_text.jpg"
        text.write_text("not an image")
        return [zero, trunc, corrupt, text]

    return make


@pytest.fixture
def forward_calls(monkeypatch):
    """``forward_calls(backbone) -> list``: every ``compute_features`` call appends its set of names."""

    def install(backbone):
        calls: list[set[str]] = []
        original = backbone.compute_features

        def counted(images, names):
            calls.append(set(names))
            return original(images, names)

        monkeypatch.setattr(backbone, "compute_features", counted)
        return calls

    return install
