"""The one cache root of oodbench and its named sub-caches.

::

    <cache-dir>/                 default: $OODBENCH_CACHE_DIR, else $XDG_CACHE_HOME/oodbench, else ~/.cache/oodbench
        features/                per-split feature arrays (oodbench.features.cache.FeatureCache)
        plans/<key>/             SeTAR search results (plan.json, search logs)
        plans/<key>.partial/     the finished steps of an unfinished search (resumed by a rerun)
        neglabel/<key>.npz       NegLabel negative-label mining, per text-tower weights and class names
        checkpoints/<key>/       fine-tuned weights and prompts (fine-tuning methods)
        digests/<folder>.tsv     remembered SHA-256 of image files by stat signature (oodbench.data.digests)

Every sub-cache is a folder named here; nothing finds another cache by climbing from a sibling. Keys are
:func:`oodbench.hashing.hash_json` of the ingredients, and every file is written with :mod:`oodbench.atomic`.
"""

from __future__ import annotations

from pathlib import Path

from oodbench.errors import UserError
from oodbench.runtime import default_cache_dir

#: The sub-caches a root holds (a method or postprocessor asks for its folder by name).
SUBCACHES = ("features", "plans", "neglabel", "checkpoints", "digests")


class CacheRoot:
    """Named sub-caches under one folder.

    Args:
        root: the cache folder (None: :func:`oodbench.runtime.default_cache_dir`).

    Raises:
        UserError: ``root`` exists and is not a folder.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"cache folder {self.root} is a file, not a folder; pass --cache-dir DIR")

    def __repr__(self) -> str:
        return f"CacheRoot({str(self.root)!r})"

    def folder(self, name: str) -> Path:
        """The folder of sub-cache ``name`` (one of :data:`SUBCACHES`); not created here."""
        if name not in SUBCACHES:
            raise ValueError(f"unknown sub-cache '{name}'; known: {', '.join(SUBCACHES)}")
        path = self.root / name
        if path.exists() and not path.is_dir():
            raise UserError(f"cache folder {path} is a file, not a folder; delete it or pass another --cache-dir")
        return path

    @property
    def features(self):
        """The feature cache (:class:`oodbench.features.cache.FeatureCache`) under ``features/``."""
        from oodbench.features.cache import FeatureCache

        return FeatureCache(self.folder("features"))

    @property
    def plans(self) -> Path:
        return self.folder("plans")

    @property
    def neglabel(self) -> Path:
        return self.folder("neglabel")

    @property
    def checkpoints(self) -> Path:
        return self.folder("checkpoints")
