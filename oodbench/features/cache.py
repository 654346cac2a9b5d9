"""The on-disk feature cache: one folder per key, per-array shards written atomically.

Layout under the cache root (default ``oodbench.runtime.default_cache_dir() / "features"``)::

    <key>/meta.json                  the key's ingredients, number of images, shard size (written once)
    <key>/<array>/shard_00003.npy    rows [3 * shard_size, 4 * shard_size) of <array> (readable images only)
    <key>/<array>/full.npy           all shards of <array> joined once complete (read memory-mapped)
    <key>/_index/shard_00003.npy     source indices of the rows of shard 3 (unreadable images are absent)
    <key>/_bad/shard_00003.json      [[index, reason], ...] of the images of shard 3 that could not be read
    shared/<key>.npz + <key>.json    model-level entries (text embeddings, logit scale, fc weights, ...)

The key is a hash of everything the numbers depend on: backbone identity and weights hash, modifier plan hash,
preprocessing config, source fingerprint (folder, file list, labels, content digests / pixel hash), precision and the
extractor version (:func:`key_ingredients`). Every file is written to a temporary name in the same folder,
flushed and renamed, so a file with a final name is always complete: an interrupted run leaves only finished
shards (and stray temporaries, which are never read and are removed later), and the next run resumes from them.
A shard that fails to load anyway (e.g. disk corruption) is deleted and recomputed, never used.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from oodbench import atomic
from oodbench.errors import UserError
from oodbench.hashing import hash_json
from oodbench.runtime import default_cache_dir

log = logging.getLogger("oodbench")

# Bump when the meaning or layout of cached arrays changes, or when the extraction arithmetic changes their values
# (a backbone's forward computed in another order, another attention kernel): every old key becomes unreachable.
# The key holds the weights and the plan, not the code, so without a bump a cache written by the old arithmetic
# would be served as if it were the new one's.
# "2": the SVD of a SeTAR-truncated weight is computed with one CPU thread (oodbench.threads), so a cache written
# by a multi-thread run holds other last bits.
EXTRACTOR_VERSION = "2"
INDEX, BAD = "_index", "_bad"


def backbone_identity(backbone) -> dict[str, Any]:
    """The backbone part of every cache key: name, class, weights hash, wrapper version."""
    return {"name": backbone.name, "class": f"{type(backbone).__module__}.{type(backbone).__qualname__}",
            "weights_hash": backbone.weights_hash(), "version": getattr(backbone, "version", None)}


def key_ingredients(backbone, plan_hash: str, source, precision: str, decode: str = "pil",
                    device=None) -> dict[str, Any]:
    """Everything the per-sample arrays of ``source`` depend on (JSON-able); its hash is the cache key.

    A ``decode`` other than the default PIL path adds ``"decode"`` (:func:`oodbench.data.decode.decode_identity`
    on ``device``); keys of the default path are unchanged by that option.
    """
    out = {
        "backbone": backbone_identity(backbone),
        "plan": plan_hash,
        "preprocess": backbone.preprocess_config(),
        "source": {"fingerprint": source.fingerprint(), "n": len(source), "kind": type(source).__name__},
        "precision": precision,
        "extractor": EXTRACTOR_VERSION,
    }
    if decode != "pil":
        from oodbench.data.decode import decode_identity

        out["decode"] = decode_identity(decode, device)
    return out


def shared_ingredients(backbone, plan_hash: str, names, class_names, prompt) -> dict[str, Any]:
    """What the model-level entries depend on: weights, plan, class names, prompt, requested names."""
    return {"backbone": backbone_identity(backbone), "plan": plan_hash, "names": sorted(names), "class_names": list(class_names or ()),
            "prompt": prompt, "extractor": EXTRACTOR_VERSION}


class Entry:
    """Shards of the per-sample arrays of one key. The in-memory base class serves extraction without a cache."""

    path: Path | None = None

    def __init__(self, key: str, n: int, shard_size: int):
        self.key, self.n, self.shard_size = key, n, shard_size
        self._mem: dict[tuple[str, int], Any] = {}

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.n // self.shard_size))

    def shard_range(self, s: int) -> range:
        return range(s * self.shard_size, min(self.n, (s + 1) * self.shard_size))

    def has(self, name: str, s: int) -> bool:
        return (name, s) in self._mem

    def write(self, name: str, s: int, array: np.ndarray) -> None:
        self._mem[(name, s)] = array

    def read(self, name: str, s: int) -> np.ndarray:
        return self._mem[(name, s)]

    def write_bad(self, s: int, bad: list[tuple[int, str]]) -> None:
        self._mem[(BAD, s)] = [list(b) for b in bad]

    def read_bad(self, s: int) -> list[tuple[int, str]]:
        return [tuple(b) for b in self._mem.get((BAD, s), [])]

    def complete(self, name: str) -> bool:
        return all(self.has(name, s) for s in range(self.num_shards))

    def load(self, name: str) -> np.ndarray:
        """All rows of ``name`` in source order (shards must be complete)."""
        return _join([self.read(name, s) for s in range(self.num_shards)])


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate shards; empty shards (every image unreadable) are stored as ``[0]`` and dropped."""
    full = [p for p in parts if len(p)]
    if not full:
        return parts[0]
    return full[0] if len(full) == 1 else np.concatenate(full)


class DiskEntry(Entry):
    """Shards of one key on disk (see the module docstring for the layout)."""

    def __init__(self, path: Path, key: str, n: int, shard_size: int):
        super().__init__(key, n, shard_size)
        self.path = path

    def _shard(self, name: str, s: int) -> Path:
        return self.path / name / f"shard_{s:05d}.npy"

    def _full(self, name: str) -> Path:
        return self.path / name / "full.npy"

    def has(self, name: str, s: int) -> bool:
        return self._full(name).is_file() or self._shard(name, s).is_file()

    def write(self, name: str, s: int, array: np.ndarray) -> None:
        (self.path / name).mkdir(parents=True, exist_ok=True)
        atomic.save_npy(self._shard(name, s), array)

    def read(self, name: str, s: int) -> np.ndarray:
        if self._full(name).is_file():
            if name != INDEX:
                raise KeyError(f"{name} is consolidated; use load()")
            index = self._load_file(self._full(INDEX))
            rows = self.shard_range(s)
            return index[(index >= rows.start) & (index < rows.stop)]
        return self._load_file(self._shard(name, s))

    def _load_file(self, path: Path, mmap: bool = False) -> np.ndarray:
        try:
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError, EOFError) as exc:
            path.unlink(missing_ok=True)
            raise CorruptShard(f"{path}: {exc}") from exc

    def write_bad(self, s: int, bad: list[tuple[int, str]]) -> None:
        if bad:
            (self.path / BAD).mkdir(parents=True, exist_ok=True)
            atomic.write_json(self.path / BAD / f"shard_{s:05d}.json", [list(b) for b in bad])

    def read_bad(self, s: int) -> list[tuple[int, str]]:
        p = self.path / BAD / f"shard_{s:05d}.json"
        return [tuple(b) for b in json.loads(p.read_text())] if p.is_file() else []

    def load(self, name: str) -> np.ndarray:
        """All rows of ``name``: memory-mapped (read-only) when consolidated or single-shard, else joined."""
        if self._full(name).is_file():
            return self._load_file(self._full(name), mmap=True)
        if self.num_shards == 1:
            return self._load_file(self._shard(name, 0), mmap=True)
        return _join([self._load_file(self._shard(name, s)) for s in range(self.num_shards)])

    def consolidate(self, name: str) -> None:
        """Join the complete shards of ``name`` into ``full.npy`` (streamed, atomic), then drop the shards."""
        if self.num_shards == 1 or self._full(name).is_file() or not self.complete(name):
            return
        # shapes from the headers (memory maps touch no data), then one shard at a time through plain reads and
        # writes: a memory-mapped target would keep every written page resident in this process (its peak
        # RSS would grow with the whole array), a plain write leaves them to the page cache
        shapes = [self._load_file(self._shard(name, s), mmap=True) for s in range(self.num_shards)]
        tail = next((p.shape[1:] for p in shapes if len(p)), shapes[0].shape[1:])
        dtype = next((p.dtype for p in shapes if len(p)), shapes[0].dtype)
        rows = sum(len(p) for p in shapes if len(p))
        del shapes
        target = self._full(name)
        tmp = atomic.temp_name(target)
        try:
            with open(tmp, "wb") as f:
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                         "fortran_order": False, "shape": (rows, *tail)})
                for s in range(self.num_shards):
                    p = self._load_file(self._shard(name, s))
                    if len(p):
                        f.write(np.ascontiguousarray(p, dtype=dtype).data)  # no copy of a C-ordered array
                    del p
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        for s in range(self.num_shards):
            self._shard(name, s).unlink(missing_ok=True)


class CorruptShard(RuntimeError):
    """A cached file exists but cannot be loaded; it has been deleted and must be recomputed."""


class FeatureCache:
    """Keyed feature cache on disk.

    Args:
        root: cache folder; default ``default_cache_dir() / "features"`` (``$OODBENCH_CACHE_DIR``, ...).
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir() / "features"
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"feature cache {self.root} is a file, not a folder; delete it or pass another --cache-dir")

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    def entry(self, ingredients: dict[str, Any], n: int, shard_size: int) -> DiskEntry:
        """The entry of a key, created with ``meta.json`` when new (an existing entry keeps its shard size)."""
        key = hash_json(ingredients)
        path = self.root / key
        meta_path = path / "meta.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                int(meta["shard_size"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UserError(f"feature cache {path}: meta.json is unreadable ({exc}); delete the folder {path}") from None
            if meta.get("ingredients") != json.loads(json.dumps(ingredients, default=str)) or meta.get("n") != n:
                raise UserError(f"feature cache {path}: meta.json does not match its key; delete the folder {path}")
            self._clean_tmp(path)
            return DiskEntry(path, key, n, int(meta["shard_size"]))
        path.mkdir(parents=True, exist_ok=True)
        from oodbench.provenance import provenance
        from oodbench.version import __version__

        # the thread count and CPU are recorded, not keyed: the numbers do not depend on the thread count
        # (oodbench.threads); the CPU kind moves last bits only (README, "Determinism and provenance")
        atomic.write_json(meta_path, {"key": key, "ingredients": ingredients, "n": n, "shard_size": shard_size,
                                      "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "oodbench": __version__,
                                      "provenance": provenance()})
        return DiskEntry(path, key, n, shard_size)

    @staticmethod
    def _clean_tmp(path: Path) -> None:
        """Remove temporaries older than an hour (left by interrupted runs; younger ones may be in use)."""
        cutoff = time.time() - 3600
        for tmp in path.rglob(".*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass

    # ------------------------------------------------------------------------------- shared entries
    def load_shared(self, ingredients: dict[str, Any]) -> dict[str, Any] | None:
        key = hash_json(ingredients)
        meta, arrays = self.root / "shared" / f"{key}.json", self.root / "shared" / f"{key}.npz"
        if not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text())
            out = dict(info["values"])
            if info["arrays"]:
                with np.load(arrays, allow_pickle=False) as z:
                    out.update({k: z[k] for k in info["arrays"]})
            return out
        except (OSError, ValueError, KeyError) as exc:
            log.warning("shared-feature cache %s unreadable (%s); recomputing", meta, exc)
            meta.unlink(missing_ok=True)
            return None

    def save_shared(self, ingredients: dict[str, Any], shared: dict[str, Any]) -> None:
        key = hash_json(ingredients)
        folder = self.root / "shared"
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(v) for k, v in shared.items() if isinstance(v, np.ndarray)}
        values = {k: v for k, v in shared.items() if k not in arrays}
        if arrays:
            atomic.write_bytes(folder / f"{key}.npz", lambda f: np.savez(f, **arrays))
        atomic.write_json(folder / f"{key}.json", {"ingredients": ingredients, "arrays": sorted(arrays),
                                                  "values": values})
