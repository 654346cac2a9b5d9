"""Data files shipped with the benchmark specs: class-name lists (``classnames/``) and split lists (``lists/``).

A spec names a shipped list as ``pkg:<file>`` (``SplitSpec.list_file``) and declares ``lists_dir=LISTS_DIR``;
any other list path is relative to the user's data root (OpenOOD's ``benchmark_imglist/...``) or absolute.
Users reach the shipped class names through the benchmarks (``--classes imagenet1k`` is the class names of the
registered ``imagenet1k`` benchmark), never through this module.
"""

from __future__ import annotations

from pathlib import Path

from oodbench.data.classnames import read_classnames as _read_file

HERE = Path(__file__).resolve().parent
LISTS_DIR = HERE / "lists"
CLASSNAMES_DIR = HERE / "classnames"
#: Official label lists of SeTAR's Table 7 (classify/README.md).
CLASSIFY_DIR = HERE / "classify"


def read_classnames(name: str) -> tuple[str, ...]:
    """The shipped class-name list ``classnames/<name>.txt`` (``imagenet1k``, ``voc``), in label order."""
    return _read_file(CLASSNAMES_DIR / f"{name}.txt")
