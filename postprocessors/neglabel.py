"""NegLabel: negative labels mined from a large word corpus.

Paper: Jiang et al., "Negative Label Guided OOD Detection with Pretrained Vision-Language Models", ICLR 2024.
Code: XueJiang16/NegLabel — mining in ``mmcls/models/classifiers/multi_modal.py`` (``CLIPScalableClassifier``),
score in ``mmcls/models/ood/clip_ood.py`` (``ScalableClassifier.grouping``), settings in ``custom_config/clip.py``.

Mining (``fit``; needs a text encoder, see :class:`~oodbench.postprocessors.base.Postprocessor`):

1. encode the ID classes as ``"the nice {}"`` (NegLabel's prompt 85, *not* the benchmark prompt), the corpus
   nouns as ``"the nice {}"`` and the corpus adjectives as ``"This is a {} photo"``; L2-normalise;
2. for every candidate n: ``sim(n) = quantile_{i ∈ ID}(cos(n, t_i), q=0.95)`` (linear interpolation, as
   ``torch.quantile``);
3. keep the lowest ``int(len · 0.15)`` separately for nouns and for adjectives (ascending, ties in corpus
   order), nouns first.

The corpus is the shipped WordNet 3.0 rebuild (:mod:`.neglabel_corpus`). Mining results are cached per
(encoder ``cache_key`` — i.e. text-tower weights and modifier plan —, ID class names, corpus digest, mining
settings) in memory and on disk as ``<key>.npz`` in ``encoder.cache_dir`` when the encoder has one, else in
``<oodbench cache>/neglabel``.

Score (higher = ID), ``t = 1``, ``ngroup = 100``::

    pos = 100 · cos(x, T_ID)   [N, C]        neg = 100 · cos(x, T_neg)   [N, M]
    drop the last M mod ngroup negatives, permute them with torch.randperm under seed 0 (the same
    permutation on every call), split into ngroup consecutive groups of equal size
    s_g = Σ_{i ∈ ID} softmax([pos, neg_g] / t)_i = 1 / (1 + Σ exp(neg_g/t) / Σ exp(pos/t))
    NegLabel(x) = mean_g s_g

The ×100 is hard-coded in the reference (not the model's logit scale). Differences from the reference:

* the permutation is drawn on the CPU generator (the reference draws it on CUDA, which gives a different
  permutation); the grouping is otherwise identical;
* the group masses are evaluated in float64 through log-sum-exps (the reference: a float32 softmax); the
  cosines are float32 as in the reference;
* ``ngroup = 1`` means one group holding every negative (the reference's ``ngroup <= 1`` branch returns a
  sum of raw positive similarities, a latent bug);
* the text encoder runs at the backbone's precision (the reference: OpenAI CLIP in fp16).

No APS grid (the reference has none).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from oodbench import atomic
from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.hashing import hash_json
from oodbench.postprocessors.base import Postprocessor
from oodbench.postprocessors.neglabel_corpus import DEFAULT_CORPUS, Corpus, load_corpus
from oodbench.postprocessors.ops import as_2d, check_in_range, l2_normalize, logsumexp64, row_chunks
from oodbench.registry import register

log = logging.getLogger("oodbench")

NEGLABEL_LOGIT_SCALE = 100.0  # hard-coded in the reference (multi_modal.py), independent of the model
ENCODE_BATCH = 1024  # prompts per encode_text call while mining
_CACHE_VERSION = 1
_MEMORY_CACHE: "OrderedDict[str, MinedLabels]" = OrderedDict()
_MEMORY_CACHE_SIZE = 8


@dataclass(frozen=True)
class MinedLabels:
    """Result of the mining step.

    Attributes:
        pos: ``[C, D]`` float32, normalised embeddings of the ID class prompts.
        neg: ``[M, D]`` float32, normalised embeddings of the selected negative prompts (nouns first).
        words: the M selected corpus words (without prompt).
        n_nouns: how many of them are nouns.
    """

    pos: np.ndarray
    neg: np.ndarray
    words: tuple[str, ...]
    n_nouns: int


# ----------------------------------------------------------------------------------------- functional core
def encode_normalized(encoder: Any, prompts: Sequence[str], what: str = "prompts") -> np.ndarray:
    """``encoder.encode_text`` in batches of :data:`ENCODE_BATCH`, L2-normalised, float32 ``[len(prompts), D]``.

    Prompts are encoded shortest first (stable order by character length) and returned in the input order, so
    text encoders that trim the context to a batch's longest prompt pad less (on the WordNet corpus: 10.1
    instead of 12.4 token positions per prompt with batches of 1024).
    """
    from oodbench.console import progress

    n = len(prompts)
    order = np.argsort(np.fromiter((len(p) for p in prompts), dtype=np.int64, count=n), kind="stable")
    out: np.ndarray | None = None
    with progress(quiet=n <= ENCODE_BATCH) as prog:  # a bar (or log lines) from the second batch on
        task = prog.add_task(f"neglabel: encoding {what}", total=n)
        for start in range(0, n, ENCODE_BATCH):
            idx = order[start:start + ENCODE_BATCH]
            emb = np.asarray(encoder.encode_text([prompts[j] for j in idx]), dtype=np.float32)
            if emb.ndim != 2 or len(emb) != len(idx):
                raise ValueError(f"encode_text returned shape {emb.shape} for {len(idx)} prompts")
            if out is None:
                out = np.empty((n, emb.shape[1]), dtype=np.float32)
            out[idx] = l2_normalize(emb)
            prog.advance(task, len(idx))
    return out if out is not None else np.zeros((0, 0), np.float32)


def candidate_similarity(candidates: np.ndarray, pos: np.ndarray, quantile: float = 0.95) -> np.ndarray:
    """``quantile_i cos(n, t_i)`` for every candidate n, float32 ``[K]``.

    Args:
        candidates: ``[K, D]`` normalised; pos: ``[C, D]`` normalised.
    """
    out = np.empty(len(candidates), dtype=np.float32)
    for sl in row_chunks(len(candidates), len(pos)):
        out[sl] = np.quantile(candidates[sl] @ pos.T, quantile, axis=1)
    return out


def select_negatives(sim: np.ndarray, n_nouns: int, fraction: float = 0.15) -> np.ndarray:
    """Indices of the lowest ``int(len · fraction)`` nouns, then of the lowest adjectives (stable order).

    Args:
        sim: ``[K]`` similarity of each candidate, nouns ``[:n_nouns]`` then adjectives.
    Returns:
        int64 indices into ``sim``, nouns first.
    """
    noun_sim, adj_sim = sim[:n_nouns], sim[n_nouns:]
    nouns = np.argsort(noun_sim, kind="stable")[: int(len(noun_sim) * fraction)]
    adjs = n_nouns + np.argsort(adj_sim, kind="stable")[: int(len(adj_sim) * fraction)]
    return np.concatenate([nouns, adjs]).astype(np.int64)


def mine_negative_labels(encoder: Any, class_names: Sequence[str], corpus: Corpus, quantile: float = 0.95,
                         fraction: float = 0.15, pos_prompt: str = "the nice {}", noun_prompt: str = "the nice {}",
                         adj_prompt: str = "This is a {} photo") -> MinedLabels:
    """NegLabel's mining (no caching; see :func:`cached_mining`)."""
    t0 = time.perf_counter()
    pos = encode_normalized(encoder, [pos_prompt.format(c) for c in class_names], "ID prompts")
    prompts = [noun_prompt.format(w) for w in corpus.nouns] + [adj_prompt.format(w) for w in corpus.adjectives]
    cand = encode_normalized(encoder, prompts, "corpus prompts")
    idx = select_negatives(candidate_similarity(cand, pos, quantile), len(corpus.nouns), fraction)
    words = corpus.nouns + corpus.adjectives
    n_nouns = int(np.sum(idx < len(corpus.nouns)))
    log.info("neglabel: mined %d negative labels (%d nouns, %d adjectives) from %d candidates in %.1f s",
             len(idx), n_nouns, len(idx) - n_nouns, len(prompts), time.perf_counter() - t0)
    return MinedLabels(pos, np.ascontiguousarray(cand[idx]), tuple(words[i] for i in idx), n_nouns)


def mining_cache_key(encoder_key: str, class_names: Sequence[str], corpus: Corpus, settings: dict) -> str:
    """The hash (:func:`oodbench.hashing.hash_json`) of everything the mined labels depend on."""
    return hash_json({"version": _CACHE_VERSION, "encoder": encoder_key, "classes": list(class_names),
                      "corpus": corpus.digest, "settings": settings}, 32)


def cached_mining(encoder: Any, class_names: Sequence[str], corpus: Corpus, miner: Any = None,
                  **settings: Any) -> tuple[MinedLabels, str]:
    """:func:`mine_negative_labels` (or ``miner``, called with the same arguments; its ``settings`` must tell it
    apart in the key) behind an in-memory and an on-disk cache. Returns (labels, cache key)."""
    from oodbench.runtime import default_cache_dir

    key = mining_cache_key(str(encoder.cache_key), class_names, corpus, settings)
    if key in _MEMORY_CACHE:
        _MEMORY_CACHE.move_to_end(key)
        return _MEMORY_CACHE[key], key
    folder = getattr(encoder, "cache_dir", None)
    folder = Path(folder) if folder else default_cache_dir() / "neglabel"
    path = folder / f"{key}.npz"
    mined = _read_mined(path)
    if mined is None:
        mined = (miner or mine_negative_labels)(encoder, class_names, corpus, **settings)
        _write_mined(path, mined)
    _MEMORY_CACHE[key] = mined
    while len(_MEMORY_CACHE) > _MEMORY_CACHE_SIZE:
        _MEMORY_CACHE.popitem(last=False)
    return mined, key


def _read_mined(path: Path) -> MinedLabels | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            mined = MinedLabels(z["pos"], z["neg"], tuple(str(w) for w in z["words"]), int(z["n_nouns"]))
    except Exception as exc:  # unreadable file: mine again and overwrite
        log.warning("neglabel: ignoring unreadable cache file %s (%s)", path, exc)
        return None
    log.info("neglabel: loaded %d mined negative labels from %s", len(mined.words), path)
    return mined


def _write_mined(path: Path, mined: MinedLabels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, lambda f: np.savez(f, pos=mined.pos, neg=mined.neg,  # a half-written file is never read
                                               words=np.array(mined.words, dtype=str), n_nouns=np.int64(mined.n_nouns)))


def group_permutation(m: int, ngroup: int, seed: int = 0) -> np.ndarray:
    """Negative indices of each group: drop ``m mod ngroup``, permute with a fresh generator seeded ``seed``.

    Returns:
        int64 ``[ngroup, m // ngroup]``; row g holds the indices (into the M negatives) of group g.
    """
    keep = m - m % ngroup
    perm = torch.randperm(keep, generator=torch.Generator().manual_seed(int(seed))).numpy()
    return perm.reshape(ngroup, -1)


def neglabel_score(image: np.ndarray, pos: np.ndarray, neg: np.ndarray, ngroup: int = 100,
                   temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Mean over groups of the ID softmax mass of ``[pos, neg_g] / t`` with ×100 cosines, float64 ``[N]``.

    Args:
        image: ``[N, D]`` image embeddings (any norm); pos: ``[C, D]``, neg: ``[M, D]`` normalised text.
    """
    groups = group_permutation(len(neg), ngroup, seed)
    neg_grouped = np.ascontiguousarray(neg[groups.ravel()])  # [G·S, D], group-major
    scale, t = np.float32(NEGLABEL_LOGIT_SCALE), float(temperature)
    image = np.asarray(image)
    out = np.empty(len(image), dtype=np.float64)
    for sl in row_chunks(len(image), len(neg_grouped) + len(pos)):
        x = l2_normalize(image[sl])
        lse_pos = logsumexp64((scale * x @ pos.T).astype(np.float64) / t)  # [n]
        neg_logits = (scale * x @ neg_grouped.T).astype(np.float64) / t  # [n, G·S]
        lse_neg = logsumexp64(neg_logits.reshape(len(x), ngroup, -1))  # [n, G]
        mass = np.exp(-np.logaddexp(0.0, lse_neg - lse_pos[:, None]))  # = Σpos / (Σpos + Σneg_g)
        out[sl] = mass.mean(axis=1)
    return out


# ------------------------------------------------------------------------------------------------- class
@register("postprocessors", "neglabel")
class NegLabel(Postprocessor):
    """NegLabel (Jiang et al., ICLR 2024): ID softmax mass against mined negative labels, averaged over groups."""

    display_name: ClassVar[str] = "NegLabel"
    default_for: ClassVar[frozenset[str]] = frozenset({"clip"})
    requires: ClassVar[frozenset[str]] = frozenset({"image", "class_names"})
    search_space: ClassVar[dict[str, list]] = {}
    fit_on: ClassVar[str | None] = "shared"
    needs_encoder: ClassVar[bool] = True
    fit_params: ClassVar[frozenset[str]] = frozenset(
        {"quantile", "neg_fraction", "corpus", "pos_prompt", "noun_prompt", "adj_prompt"})
    paper: ClassVar[str] = "Jiang et al., Negative Label Guided OOD Detection with Pretrained VLMs, ICLR 2024"

    def __init__(self, ngroup: int = 100, temperature: float = 1.0, seed: int = 0, quantile: float = 0.95,
                 neg_fraction: float = 0.15, corpus: str = DEFAULT_CORPUS, pos_prompt: str = "the nice {}",
                 noun_prompt: str = "the nice {}", adj_prompt: str = "This is a {} photo"):
        self.ngroup = ngroup
        self.temperature = temperature
        self.seed = seed
        self.quantile = quantile
        self.neg_fraction = neg_fraction
        self.corpus = corpus
        self.pos_prompt = pos_prompt
        self.noun_prompt = noun_prompt
        self.adj_prompt = adj_prompt

    def fit(self, features: Features | None = None, encoder: Any = None) -> "NegLabel":
        check_in_range("neglabel", "quantile", self.quantile, 0, 1)
        check_in_range("neglabel", "neg_fraction", self.neg_fraction, 0, 1, low_open=True)
        for name in ("pos_prompt", "noun_prompt", "adj_prompt"):
            value = getattr(self, name)
            if not isinstance(value, str) or value.count("{}") != 1:
                raise UserError(f"neglabel: {name}={value!r} must contain one '{{}}' for the word")
        class_names = self._class_names(features, encoder, "mine its negative labels")
        settings = {"quantile": float(self.quantile), "fraction": float(self.neg_fraction),
                    "pos_prompt": self.pos_prompt, "noun_prompt": self.noun_prompt, "adj_prompt": self.adj_prompt}
        return self._keep(*cached_mining(encoder, class_names, load_corpus(self.corpus), **settings))

    def _class_names(self, features: Features | None, encoder: Any, purpose: str) -> list[str]:
        """The ID class names, after checking that a text encoder and the names were given."""
        name = self.registry_name or type(self).__name__
        if encoder is None or not hasattr(encoder, "encode_text") or not hasattr(encoder, "cache_key"):
            raise UserError(f"{name} needs a text encoder (an object with encode_text() and cache_key) to "
                            f"{purpose}; it works with CLIP backbones only")
        if features is None or "class_names" not in features:
            raise UserError(f"{name} needs the ID class names (feature 'class_names') to {purpose}")
        return [str(c) for c in features["class_names"]]

    def _keep(self, mined: MinedLabels, key: str) -> "NegLabel":
        """Store the mined (or pooled) labels as the fitted state."""
        if len(mined.words) == 0:
            raise UserError(f"{self.registry_name}: too few candidates to select any negative label; "
                            "raise neg_fraction")
        self.pos_text_ = mined.pos
        self.neg_text_ = mined.neg
        self.neg_words_ = mined.words
        self.n_neg_nouns_ = mined.n_nouns
        self.cache_key_ = key
        return self

    def score(self, features: Features) -> np.ndarray:
        self._check_fitted("neg_text_")
        name = self.registry_name or type(self).__name__
        if isinstance(self.ngroup, bool) or not isinstance(self.ngroup, (int, np.integer)) or self.ngroup < 1:
            raise UserError(f"{name}: ngroup={self.ngroup!r} must be a positive integer")
        if self.ngroup > len(self.neg_text_):
            raise UserError(f"{name}: ngroup={self.ngroup} exceeds the {len(self.neg_text_)} selected negative labels")
        check_in_range(name, "temperature", self.temperature, 0, float("inf"), low_open=True)
        return neglabel_score(as_2d(features, "image"), self.pos_text_, self.neg_text_, int(self.ngroup),
                              self.temperature, int(self.seed))
