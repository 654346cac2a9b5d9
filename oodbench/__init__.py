"""oodbench: out-of-distribution detection benchmark suite built around SeTAR.

SeTAR (Li et al., NeurIPS 2024) replaces chosen weight matrices of CLIP or of a vision classifier with
low-rank approximations picked by a greedy search on the LoCoOp loss. In oodbench it is a registered *method*
that composes with every registered *postprocessor* (OOD score). Python API: :func:`oodbench.run`,
:func:`oodbench.search`, :func:`oodbench.store`, :func:`oodbench.tables` (see :mod:`oodbench.api`).
"""

from oodbench.version import __version__

__all__ = ["__version__", "run", "search", "store", "tables"]


def __getattr__(name: str):
    """``oodbench.run`` / ``oodbench.search`` / ``oodbench.store`` / ``oodbench.tables`` (imported on first use, so that
    ``import oodbench`` stays light)."""
    if name in ("run", "search", "store", "tables"):
        from oodbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")
