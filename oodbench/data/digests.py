"""Content digests of image files, remembered per folder by each file's stat signature.

The feature-cache key of a file-based split must change whenever any image's *content* changes, so the
fingerprint of a :class:`~oodbench.data.sources.FileListSource` is built from the SHA-256 of every file.
Hashing every byte on every run would cost as much disk reading as the extraction the cache is there to
avoid, so digests are remembered, the way git's index remembers them:

* one table per folder under ``<cache-dir>/digests/<hash of the resolved folder>.tsv``, a line per file:
  ``relpath, size, mtime_ns, ctime_ns, inode, device, sha256``;
* a remembered digest is reused only when all six stat fields are unchanged. ``ctime`` cannot be set by
  users: any write, rename over, ``touch -d``, ``cp -p`` or ``rsync -a`` of the file changes it (or the inode),
  so a same-size replacement with a restored modification time is still seen;
* a file modified less than :data:`RACY_SECONDS` before it was hashed is hashed but not remembered (a second
  write within the same timestamp tick would otherwise be invisible), and neither is a file whose stat
  changed while it was read.

A table that cannot be read is ignored; one that cannot be written is not an error (the digests are then
simply recomputed next time). Deleting ``<cache-dir>/digests`` forces a full re-hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from oodbench import atomic
from oodbench.hashing import hash_json
from oodbench.runtime import default_cache_dir

log = logging.getLogger("oodbench")

#: Files changed more recently than this (seconds) before hashing are not remembered (timestamp granularity
#: is 2 s on FAT file systems, 1 s on HFS+ and some NFS servers, a clock tick on ext4/xfs).
RACY_SECONDS = 2.0
#: Digest of a listed file that does not exist.
MISSING = "missing"
_CHUNK = 1 << 20
_HEADER = "# oodbench file digests v1\t"

Signature = str  # "size<TAB>mtime_ns<TAB>ctime_ns<TAB>inode<TAB>device", compared as text


def default_digest_dir() -> Path:
    """``<default cache dir>/digests`` (``$OODBENCH_CACHE_DIR``, else ``~/.cache/oodbench``)."""
    return default_cache_dir() / "digests"


def _signature(st: os.stat_result) -> Signature:
    return f"{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}\t{st.st_dev}"


def _changed_ns(sig: Signature) -> int:
    """The later of mtime and ctime of a signature."""
    fields = sig.split("\t")
    return max(int(fields[1]), int(fields[2]))


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def table_path(digest_dir: Path, root: Path) -> Path:
    """The digest table of folder ``root`` (resolved) in ``digest_dir``."""
    return Path(digest_dir) / f"{hash_json(str(root))}.tsv"


def _read_table(path: Path, root: Path) -> dict[str, tuple[Signature, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    if not lines or lines[0] != _HEADER + str(root):
        return {}
    table: dict[str, tuple[Signature, str]] = {}
    for line in lines[1:]:
        rel, sep, rest = line.partition("\t")
        sig, sep2, digest = rest.rpartition("\t")
        if sep and sep2 and len(digest) == 64 and sig.count("\t") == 4:
            table[rel] = (sig, digest)
    return table


def _write_table(path: Path, root: Path, table: dict[str, tuple[Signature, str]]) -> None:
    body = "".join(f"{rel}\t{sig}\t{digest}\n" for rel, (sig, digest) in sorted(table.items()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, f"{_HEADER}{root}\n{body}")
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        log.debug("file digests of %s not saved (%s)", root, exc)


def file_digests(root: str | Path, relpaths: Sequence[str], digest_dir: str | Path | None = None,
                 workers: int | None = None) -> list[str]:
    """SHA-256 (hex) of each file ``root / relpath``, reusing the remembered digests of unchanged files.

    Args:
        root: the folder the paths are relative to.
        relpaths: file paths relative to ``root``.
        digest_dir: folder of the digest tables (None: :func:`default_digest_dir`).
        workers: hashing threads (default: up to 8, by CPU count).

    Returns:
        One digest per path, in order; :data:`MISSING` for a file that does not exist, ``unreadable:<errno>``
        for one that cannot be read (the loader reports those files by path).
    """
    root = Path(root).resolve()
    digest_dir = Path(digest_dir) if digest_dir is not None else default_digest_dir()
    table_file = table_path(digest_dir, root)
    table = _read_table(table_file, root)
    racy_ns = int(RACY_SECONDS * 1e9)
    base = str(root)

    def hashed(rel: str, before: Signature) -> tuple[str, tuple[Signature, str] | None]:
        path = os.path.join(base, rel)
        try:
            digest = _sha256(path)
            after = _signature(os.stat(path))
        except FileNotFoundError:
            return MISSING, None
        except OSError as exc:
            return f"unreadable:{exc.errno}", None
        fresh = time.time_ns() - _changed_ns(after) < racy_ns
        keep = after == before and not fresh and "\t" not in rel and "\n" not in rel
        return digest, ((after, digest) if keep else None)

    digests: list[str] = [MISSING] * len(relpaths)
    todo: list[tuple[int, str, Signature]] = []
    for i, rel in enumerate(relpaths):
        try:
            sig = _signature(os.stat(os.path.join(base, rel)))
        except FileNotFoundError:
            continue
        except OSError as exc:
            digests[i] = f"unreadable:{exc.errno}"
            continue
        known = table.get(rel)
        if known is not None and known[0] == sig:
            digests[i] = known[1]
        else:
            todo.append((i, rel, sig))
    if not todo:
        return digests
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    chunks = [todo[k:k + 64] for k in range(0, len(todo), 64)]
    new: dict[str, tuple[Signature, str]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for chunk, results in zip(chunks, pool.map(lambda c: [hashed(rel, sig) for _i, rel, sig in c], chunks)):
            for (i, rel, _sig), (digest, entry) in zip(chunk, results):
                digests[i] = digest
                if entry is not None:
                    new[rel] = entry
    if new:
        _write_table(table_file, root, {**_read_table(table_file, root), **table, **new})
    return digests


def use_digest_dir(resolved, digest_dir: str | Path):
    """Point every file-based split of a resolved benchmark at ``digest_dir`` (the ``--cache-dir``'s
    ``digests/``); returns ``resolved``."""
    for split in resolved.splits():
        if hasattr(split.source, "digest_dir") and split.source._fingerprint is None:
            split.source.digest_dir = Path(digest_dir)
    return resolved
