"""Image sources: an ordered list of (image, label) with a fingerprint that identifies its content.

A source is what a split of a benchmark resolves to. Two kinds:

* :class:`FileListSource` - image files under a root, in a fixed order (ImageFolder trees, OpenOOD imglists,
  SeTAR JSON lists all resolve to one). Fingerprint = hash of the resolved root folder and, per file, its
  relative path, label and SHA-256 content digest (:mod:`oodbench.data.digests`).
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

from oodbench.data.digests import file_digests
from oodbench.data.images import to_rgb


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
    """Image files ``root / relpath`` in list order.

    The :meth:`fingerprint` (part of every feature-cache key and of every result) changes whenever the resolved
    root folder, the file list, a label, or the **content** of any file changes: it hashes the SHA-256 of every
    file, not its size or time. Content digests were chosen over "path + size + mtime" because a same-size
    rewrite (BMP, PPM, uncompressed TIFF, a re-encode) or a copy that keeps the modification time
    (``cp -p``, ``rsync -a``, archives) leaves size and mtime unchanged. Their cost is paid once per file: digests
    are remembered by stat signature (size, mtime, ctime, inode, device) in ``<cache-dir>/digests`` and re-used
    only while all of it is unchanged (see :mod:`oodbench.data.digests`). The root is part of the identity, so a
    second folder with the same files is a different data set (results name the folder they measured); moving
    a data root therefore costs one re-extraction.

    Attributes:
        digest_dir: folder of the remembered file digests (None: ``<default cache dir>/digests``).
    """

    name: str
    root: Path
    relpaths: list[str]
    labels: np.ndarray
    _fingerprint: str | None = field(default=None, repr=False)
    classes: list[str] | None = field(default=None, repr=False)  # class folders in label order (readers set it)
    digest_dir: Path | None = field(default=None, repr=False)
    _digests: list[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.relpaths) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.relpaths)} paths but {len(self.labels)} labels")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_digests"] = None  # loader workers need paths, not tens of thousands of digests
        return state

    def path(self, index: int) -> Path:
        return self.root / self.relpaths[index]

    def load(self, index: int) -> Image.Image:
        with Image.open(self.path(index)) as im:
            return to_rgb(im)

    def describe(self, index: int) -> str:
        return str(self.path(index))

    def digests(self) -> list[str]:
        """SHA-256 of every file, in list order (computed once; remembered across runs by stat signature)."""
        if self._digests is None:
            self._digests = file_digests(self.root, self.relpaths, self.digest_dir)
        return self._digests

    def fingerprint(self) -> str:
        """Hash of the resolved root and every (relative path, label, content digest); 20 hex digits."""
        if self._fingerprint is None:
            h = hashlib.sha256(b"oodbench file list v2\n")
            h.update(f"root\t{self.root.resolve()}\n".encode())
            for rel, lab, digest in zip(self.relpaths, self.labels.tolist(), self.digests()):
                h.update(f"{rel}\t{lab}\t{digest}\n".encode())
            self._fingerprint = h.hexdigest()[:20]
        return self._fingerprint

    def list_digest(self) -> str:
        """Hash of the file list alone (relative paths and labels; no root, no contents): equal for the same
        list on two machines. 20 hex digits."""
        h = hashlib.sha256(b"oodbench relpaths+labels v1\n")
        for rel, lab in zip(self.relpaths, self.labels.tolist()):
            h.update(f"{rel}\t{lab}\n".encode())
        return h.hexdigest()[:20]

    def subset(self, keep: list[int], name: str | None = None) -> "FileListSource":
        digests = None if self._digests is None else [self._digests[i] for i in keep]
        return FileListSource(name or self.name, self.root, [self.relpaths[i] for i in keep], self.labels[keep],
                              classes=self.classes, digest_dir=self.digest_dir, _digests=digests)


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
