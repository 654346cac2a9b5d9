"""The benchmark contract lives in the engine (:mod:`oodbench.benchmark`); these names are re-exported so that a
benchmark plugin can import everything it declares from one place."""

from oodbench.benchmark import BenchmarkSpec, Group, ResolvedBenchmark, Role, Split, SplitSpec

__all__ = ["BenchmarkSpec", "Group", "ResolvedBenchmark", "Role", "Split", "SplitSpec"]
