"""A torch ``Dataset`` over an :class:`~oodbench.data.sources.ImageSource`, tolerant of unreadable files.

Each item is ``(tensor | None, index, reason | None)``: an image that cannot be decoded (missing, zero-byte,
truncated, corrupt, not an image) yields ``None`` and the reason instead of raising inside a worker, so the
caller decides (skip and report, or stop) without a separate checking pass. :func:`collate` stacks the good
images of a batch and passes the bad ones along.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from PIL import Image

from oodbench.data.sources import ImageSource

# What PIL / the file system raise for a file that is not a readable image.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def load_image(source: ImageSource, index: int) -> Image.Image:
    """``source.load(index)`` with PIL's decompression-bomb *warning* silenced (huge but valid images load)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return source.load(index)


def unreadable_reason(exc: BaseException) -> str:
    """Short human-readable reason for an exception raised while reading an image."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    text = str(exc) or type(exc).__name__
    if "cannot identify image file" in text:
        return "not an image (or empty / corrupt header)"
    return f"{type(exc).__name__}: {text}"


class SourceDataset(torch.utils.data.Dataset):
    """Items ``(transform(image), index, None)`` or ``(None, index, reason)`` for unreadable images.

    Args:
        source: the images.
        transform: PIL image -> float tensor ``[3, H, W]`` (a backbone's ``preprocess()``).
    """

    def __init__(self, source: ImageSource, transform: Callable):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            image = load_image(self.source, index)
        except UNREADABLE as exc:
            return None, index, unreadable_reason(exc)
        return self.transform(image), index, None


def collate(items):
    """Batch of dataset items -> ``(images [B, 3, H, W] | None, indices int64 [B], bad [(index, reason)])``."""
    good = [(x, i) for x, i, reason in items if reason is None]
    bad = [(i, reason) for _x, i, reason in items if reason is not None]
    # default_collate stacks into shared memory inside a worker: the batch crosses to the main process uncopied
    images = torch.utils.data.default_collate([x for x, _ in good]) if good else None
    indices = torch.tensor([i for _, i in good], dtype=torch.int64)
    return images, indices, bad
