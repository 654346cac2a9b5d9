"""Data files shipped with the benchmark specs: class-name lists (``classnames/``) and split lists (``lists/``).

A spec names a shipped list as ``pkg:<file>`` (``SplitSpec.list_file``) and declares ``lists_dir=LISTS_DIR``;
any other list path is relative to the user's data root (OpenOOD's ``benchmark_imglist/...``) or absolute.
"""

from __future__ import annotations

from pathlib import Path

from oodbench.errors import UserError

HERE = Path(__file__).resolve().parent
LISTS_DIR = HERE / "lists"
CLASSNAMES_DIR = HERE / "classnames"


def shipped_classnames() -> list[str]:
    """Names of the class-name files shipped in :data:`CLASSNAMES_DIR` (``imagenet1k``, ``voc``)."""
    return sorted(p.stem for p in CLASSNAMES_DIR.glob("*.txt"))


def read_classnames(path: str | Path) -> tuple[str, ...]:
    """Class names, one per line in label order (blank lines and ``#`` comments ignored).

    ``path`` is a text file, or the name of a shipped list (``imagenet1k``, ``voc``).
    """
    p = Path(path)
    if not p.is_file() and (CLASSNAMES_DIR / f"{path}.txt").is_file():
        p = CLASSNAMES_DIR / f"{path}.txt"
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"class names: cannot read {path} ({exc.strerror or exc}); give a text file with one "
                        f"class name per line, or one of: {', '.join(shipped_classnames())}") from None
    names = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise UserError(f"class names: {path} holds no class name; write one name per line")
    return names
