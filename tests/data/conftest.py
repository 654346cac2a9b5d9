"""Fixtures for the data tests: small real image files written into temporary folders."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write_image(path: Path, seed: int = 0, size: int = 12, fmt: str | None = None) -> Path:
    """A small random RGB image file (format from the suffix unless ``fmt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def _write_bad_files(folder: Path) -> dict[str, Path]:
    """One file of each unreadable kind: zero-byte, truncated JPEG, corrupt PNG, text with an image name."""
    folder.mkdir(parents=True, exist_ok=True)
    zero = folder / "zero.jpg"
    zero.write_bytes(b"")
    good = _write_image(folder / "_full.jpg", seed=9, size=64)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    good.unlink()
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    text = folder / "notes.jpg"
    text.write_text("this is not an image\n")
    return {"zero": zero, "truncated": truncated, "corrupt": corrupt, "text": text}


@pytest.fixture
def write_image():
    """``write_image(path, seed=0, size=12)``: a small random RGB image file."""
    return _write_image


@pytest.fixture
def write_bad_files():
    """``write_bad_files(folder) -> {kind: path}``: zero-byte, truncated, corrupt and non-image files."""
    return _write_bad_files


@pytest.fixture
def image_tree(tmp_path):
    """``root/<class>/...`` with nested sub-folders and mixed extensions; returns the root."""
    root = tmp_path / "tree"
    layout = {"cat": ["b.jpg", "a.png", "sub/z.jpg", "sub-x/y.JPEG"], "dog": ["c.jpeg", "a.bmp"], "ant": ["x.png"]}
    seed = 0
    for cls, files in layout.items():
        for f in files:
            _write_image(root / cls / f, seed=seed)
            seed += 1
    return root
