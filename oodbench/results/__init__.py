"""Results: the run store, and (later) tables, leaderboard and plots built from stored runs."""

from oodbench.results.store import ResultsStore, RunRecord, code_version

__all__ = ["ResultsStore", "RunRecord", "code_version"]
