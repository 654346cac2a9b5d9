"""Full check of image files: every file is opened and decoded, problems are reported by path.

Used by ``oodbench data verify``. Feature extraction does not need it: it detects unreadable images while
loading them. A file counts as fine when it decodes *and* converts to 8-bit RGB the way the loader converts
it (:func:`oodbench.data.images.to_rgb`): 16-bit and float images are fine because they are scaled, not clipped.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from oodbench.data.images import to_rgb
from oodbench.data.loader import UNREADABLE, unreadable_reason


def check_image_file(path: str | Path) -> str | None:
    """None when ``path`` decodes as an image, else why not (missing, zero-byte, not an image, truncated, ...)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "zero-byte file"
        with Image.open(path) as im:
            im.load()  # full decode: a truncated or corrupt file fails here, not at open()
            to_rgb(im)  # what the loader does with it
    except UNREADABLE as exc:
        return unreadable_reason(exc)
    return None


def check_files(paths: Iterable[str | Path], workers: int | None = None,
                advance: Callable[[int], None] | None = None) -> list[tuple[str, str]]:
    """Decode every file (in a thread pool); ``[(path, reason)]`` of the unreadable ones, in input order."""
    paths = [str(p) for p in paths]
    workers = workers or min(8, os.cpu_count() or 1)
    bad: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, reason in zip(paths, pool.map(check_image_file, paths, chunksize=64)):
            if reason is not None:
                bad.append((path, reason))
            if advance is not None:
                advance(1)
    return bad
