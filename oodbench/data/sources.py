"""Image sources: an ordered list of (image, label) with a fingerprint that identifies its content.

A source is what a split of a benchmark resolves to. Two kinds:

* :class:`FileListSource` - image files under a root, in a fixed order (ImageFolder trees, OpenOOD imglists,
  SeTAR JSON lists all resolve to one). Fingerprint = hash of the relative paths, labels and file sizes.
* :class:`ArraySource` - images held in memory as ``uint8 [N, H, W, 3]`` (the embedded digits benchmark).
  Fingerprint = hash of the pixels and labels.

Labels are ID class indices, ``-1`` for OOD images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


class ImageSource:
    """Base class: ``len(source)``, ``source.load(i) -> PIL.Image (RGB)``, ``labels``, ``fingerprint()``."""

    name: str
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Image.Image:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Human-readable identity of one sample (a path), for error messages."""
        return f"{self.name}[{index}]"


@dataclass
class FileListSource(ImageSource):
    """Image files ``root / relpath`` in list order."""

    name: str
    root: Path
    relpaths: list[str]
    labels: np.ndarray
    _fingerprint: str | None = field(default=None, repr=False)
    classes: list[str] | None = field(default=None, repr=False)  # class folders in label order (readers set it)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.relpaths) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.relpaths)} paths but {len(self.labels)} labels")

    def path(self, index: int) -> Path:
        return self.root / self.relpaths[index]

    def load(self, index: int) -> Image.Image:
        with Image.open(self.path(index)) as im:
            return im.convert("RGB")

    def describe(self, index: int) -> str:
        return str(self.path(index))

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            for rel, lab in zip(self.relpaths, self.labels.tolist()):
                try:
                    size = (self.root / rel).stat().st_size
                except OSError:
                    size = -1
                h.update(f"{rel}\t{lab}\t{size}\n".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def subset(self, keep: list[int], name: str | None = None) -> "FileListSource":
        return FileListSource(name or self.name, self.root, [self.relpaths[i] for i in keep], self.labels[keep],
                              classes=self.classes)


@dataclass
class ArraySource(ImageSource):
    """In-memory ``uint8 [N, H, W, 3]`` images."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"{self.name}: images must be uint8 [N, H, W, 3], got {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index], mode="RGB")

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(self.images.tobytes())
            h.update(self.labels.tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint
