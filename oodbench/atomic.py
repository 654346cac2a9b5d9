"""The one atomic-write helper of oodbench: a file or folder with its final name is always complete.

Files are written to a temporary name in the same folder, flushed, fsynced and renamed; folders are filled
under a temporary name and renamed in one step, with the mode ``mkdir`` would give them (the umask honoured, so
a results store shared with a group stays readable to it). An interrupted writer leaves only temporaries (names
starting with ``.`` and ending in ``.tmp``), which readers never open.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


def temp_name(path: Path) -> Path:
    """A unique temporary sibling of ``path`` (hidden, ``.tmp`` suffix)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_bytes(path: str | Path, write: Callable[[Any], Any]) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    write_text(path, json.dumps(obj, indent=indent, default=str) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    write_bytes(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def current_umask() -> int:
    """The process's file-mode creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def folder(final: str | Path, replace: bool = True) -> Iterator[Path]:
    """Fill a temporary folder next to ``final``; on success it is renamed to ``final`` in one step.

    With ``replace`` an existing ``final`` is removed first (its replacement is complete by then); without it an
    existing ``final`` raises :class:`FileExistsError`. On any exception the temporary folder is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700; the final folder is as mkdir would make it
        yield tmp
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} exists")
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
