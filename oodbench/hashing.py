"""The one hashing helper of oodbench: canonical-JSON and byte digests used by every cache key and record.

Every key (feature cache, SeTAR plans, NegLabel mining, fine-tuned checkpoints) is ``hash_json`` of a dict of
ingredients, so two places can never hash the same identity two different ways.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DEFAULT_DIGITS = 20


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON of ``obj`` (non-JSON values through ``str``): equal data, equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_json(obj: Any, n: int = DEFAULT_DIGITS) -> str:
    """SHA-256 (first ``n`` hex digits) of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:n]


def hash_bytes(data: bytes, n: int = 64) -> str:
    """SHA-256 (first ``n`` hex digits) of ``data``."""
    return hashlib.sha256(data).hexdigest()[:n]


def hash_file(path: str | Path, n: int = 64, chunk: int = 1 << 20) -> str:
    """SHA-256 (first ``n`` hex digits) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()[:n]
