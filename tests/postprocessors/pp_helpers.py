"""Test helpers of the postprocessor tests (a module with a unique name, importable from the tests)."""

from __future__ import annotations

import hashlib

import numpy as np

CLASS_NAMES = ["goldfish", "airliner", "volcano", "teapot", "umbrella"]


class FakeTextEncoder:
    """Deterministic stand-in for a CLIP text tower: the sum of one random vector per (lower-cased) word.

    Prompts sharing words get similar embeddings, like a real text encoder; nothing is learned or downloaded.
    ``calls`` and ``prompts_seen`` record what was encoded.
    """

    def __init__(self, dim: int = 32, cache_key: str = "fake-text-encoder-v1", cache_dir=None):
        self.dim = dim
        self.cache_key = cache_key
        if cache_dir is not None:
            self.cache_dir = str(cache_dir)
        self.calls = 0
        self.prompts_seen: list[str] = []
        self._vectors: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        vec = self._vectors.get(word)
        if vec is None:
            seed = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
            vec = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            self._vectors[word] = vec
        return vec

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        self.calls += 1
        self.prompts_seen.extend(prompts)
        out = np.zeros((len(prompts), self.dim), dtype=np.float32)
        for i, p in enumerate(prompts):
            for w in p.lower().split():
                out[i] += self._word(w)
        return out * 3.0  # not normalised, as a real encoder
