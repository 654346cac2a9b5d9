"""Benchmark specs and file-list readers (installed as ``oodbench.datasets``)."""
