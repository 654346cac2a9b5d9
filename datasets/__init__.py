"""Benchmark specs, the file lists and class names they ship, and their resolution on a data root
(installed as ``oodbench.datasets``).

Registration idiom: a benchmark is registered as a **zero-argument factory** returning a
:class:`~oodbench.datasets.base.BenchmarkSpec`::

    @register("benchmarks", "mybench")
    def mybench() -> BenchmarkSpec:
        \"\"\"One-line summary shown by ``oodbench list benchmarks``.\"\"\"
        return BenchmarkSpec(...)

:func:`get_benchmark` calls the factory (a plugin may also register a ``BenchmarkSpec`` instance directly).
:func:`resolve` turns a spec into image sources on a data root; a spec whose images are built in memory
overrides ``BenchmarkSpec.resolve`` (see ``digits``).
"""

from __future__ import annotations

from oodbench.benchmark import BenchmarkSpec, ResolvedBenchmark, SplitSpec, get_benchmark
from oodbench.data.resolve import resolve

# Built-in benchmarks: importing the modules registers them.
from oodbench.datasets import digits, imagenet1k, openood_imagenet1k, ssb_hard, voc  # noqa: E402,F401

__all__ = ["BenchmarkSpec", "ResolvedBenchmark", "SplitSpec", "get_benchmark", "resolve"]

