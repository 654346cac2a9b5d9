"""CSP: NegLabel's score over a "conjugated semantic pool" of negative labels.

Paper: Chen et al., "Conjugated Semantic Pool Improves OOD Detection with Pre-trained Vision-Language Models",
NeurIPS 2024. Code: MengyuanChen21/NeurIPS2024-CSP — pool construction in
``mmcls/models/classifiers/multi_modal.py`` (``CLIPScalableClassifier``), prompt lists in
``mmcls/models/classifiers/class_names.py``, score in ``mmcls/models/ood/clip_ood.py`` (``ScalableClassifier``),
settings in ``custom_config/clip-ViT-B16.py``.

Pool (``fit``; needs a text encoder, see :class:`~oodbench.postprocessors.base.Postprocessor`), as the reference
code builds it:

1. **words**: the NegLabel WordNet corpus without the lexicographer files ``noun.person``, ``noun.quantity``,
   ``noun.group`` and ``adj.pert`` (the reference's ``txt_exclude``);
2. **ID text**: every class name in each of the 8 noun templates of :data:`NOUN_TEMPLATES`; the *raw* text
   embeddings are averaged over the templates, then L2-normalised;
3. **nouns**: the same 8-template ensemble per noun;
4. **conjugated adjectives** (the part that is new in CSP): each adjective becomes ``"<adjective> <superclass>"``
   with the superclass word drawn by ``random.choice`` from :data:`SUPERCLASS_TEMPLATES` ("environment",
   "space", "object", ...) under ``random.seed(0)``, one draw per adjective in corpus order; that phrase is put in
   the 4 templates of :data:`ADJ_TEMPLATES`, averaged raw, L2-normalised;
5. **selection**: ``sim(n) = quantile_{i ∈ ID}(cos(n, t_i), 0.95)``, set to 1 when ``max_i cos(n, t_i) > 0.95``;
   the lowest ``int(len · 0.15)`` nouns, then the lowest ``int(len · 0.15)`` adjective phrases (ascending, ties
   in corpus order) — NegLabel's :func:`~.neglabel.candidate_similarity` and :func:`~.neglabel.select_negatives`.

The pool is cached like NegLabel's mining, per (encoder ``cache_key`` — text-tower weights and modifier plan —,
ID class names, corpus digest, pool settings), in memory and as ``<key>.npz`` in ``encoder.cache_dir``.

Score: NegLabel's grouped softmax (:func:`~.neglabel.neglabel_score`; ×100 cosines, ``t = 1``,
``ngroup = 100``, the negatives permuted under seed 0 and split into groups; higher = ID), unchanged in CSP.

Paper and code: the paper presents CSP as an *expansion* of the original semantic pool with modified superclass
names ("adjective + superclass" phrases). In the code the noun part of the pool stays, and every adjective is
*replaced* by one randomly drawn "adjective + superclass" phrase (the plain adjectives are not candidates); the
superclass words are the fixed 14-entry list above; three noun files and ``adj.pert`` are dropped; a candidate whose
best ID cosine exceeds 0.95 is never selected. These are choices of the code; oodbench follows the code.

Differences from the reference code:

* the default word list is the shipped WordNet 3.0 rebuild, which is already de-duplicated across files, so a
  word whose first occurrence is in an excluded file is missing even when a kept file repeats it (the reference
  de-duplicates after excluding); the reference reads its files in ``os.listdir`` order, which decides the
  adjective order and therefore which superclass each adjective draws. ``corpus=FILE`` takes
  ``part<TAB>lexicographer file<TAB>word`` lines in any order, duplicates allowed (see :func:`pool_words`);
  ``corpus=DIR`` takes the reference's word files themselves (``noun.*.txt``, ``adj.*.txt``), read in sorted name
  order — given the reference's files in its reading order, the pool is the reference's;
* the NegLabel-side differences (:mod:`.neglabel`): CPU permutation, float64 group masses, fp32 text encoder
  (the reference averages fp16 embeddings);
* ``torch.argsort`` is not stable; ties keep corpus order here.

No APS grid (the reference has none).
"""

from __future__ import annotations

import gzip
import io
import logging
import random
import time
from collections import OrderedDict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors.neglabel import (
    ENCODE_BATCH,
    MinedLabels,
    NegLabel,
    _read_mined,
    _write_mined,
    candidate_similarity,
    mining_cache_key,
    select_negatives,
)
from oodbench.postprocessors.neglabel_corpus import _SHIPPED, DEFAULT_CORPUS, load_corpus, read_word_files
from oodbench.postprocessors.ops import check_in_range, l2_normalize
from oodbench.registry import register

log = logging.getLogger("oodbench")

# The reference's prompt lists (class_names.py): noun ensemble, superclass words, adjective ensemble.
NOUN_TEMPLATES: tuple[str, ...] = (
    "a close-up photo of the nice {}.", "a photo with the nice {}.", "a good photo with the nice {}.",
    "a photo of the nice {}.", "{}", "the {}", "the good {}", "the nice {}",
)
SKETCH_NOUN_TEMPLATES: tuple[str, ...] = ("a sketch of a {}", "a sketch of the {}") + NOUN_TEMPLATES
SUPERCLASS_TEMPLATES: tuple[str, ...] = (
    "{} environment", "{} space", "{} object", "{} scene", "{} place", "{} item", "{} area", "{} view",
    "{} thing", "{} pattern", "{} structure", "{} landscape", "{} vista", "{} creature",
)
ADJ_TEMPLATES: tuple[str, ...] = ("{}", "a nice photo of {}", "a good photo of {}", "a close-up photo of {}")
DEFAULT_EXCLUDE: tuple[str, ...] = ("noun.person", "noun.quantity", "noun.group", "adj.pert")
_NOUN_SETS = {"default": NOUN_TEMPLATES, "sketch": SKETCH_NOUN_TEMPLATES}
_CACHE_VERSION = 1
_MEMORY_CACHE: "OrderedDict[str, MinedLabels]" = OrderedDict()
_MEMORY_CACHE_SIZE = 8


# ----------------------------------------------------------------------------------------- functional core
@lru_cache(maxsize=4)
def corpus_rows(name_or_path: str = DEFAULT_CORPUS) -> tuple[tuple[str, str, str], ...]:
    """``(part, lexicographer file, word)`` of every corpus word, in corpus order (lexfile ``""`` if absent); a
    folder of the reference's word files is read by :func:`~.neglabel_corpus.read_word_files` (duplicates kept)."""
    load_corpus(name_or_path)  # validates the file (one-line DataError) before it is parsed here
    if name_or_path not in _SHIPPED and Path(name_or_path).expanduser().is_dir():
        return tuple(read_word_files(name_or_path))
    if name_or_path in _SHIPPED:
        data = resources.files("oodbench.postprocessors").joinpath("data", _SHIPPED[name_or_path]).read_bytes()
    else:
        data = Path(name_or_path).expanduser().read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    rows = []
    for line in data.decode("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            cols = line.split("\t")
            rows.append((cols[0], cols[1] if len(cols) == 3 else "", cols[-1]))
    return tuple(rows)


def pool_words(rows: Sequence[tuple[str, str, str]], exclude: Sequence[str] = DEFAULT_EXCLUDE,
               seed: int = 0) -> tuple[list[str], list[str]]:
    """The nouns and the conjugated adjective phrases of the pool, in corpus order.

    Rows of excluded files are skipped first, then repeated words (the first occurrence wins), as the reference
    does; so a corpus file written from the reference's own word files, in its reading order and with its
    duplicates, gives the reference's pool exactly.

    Returns:
        (nouns, phrases): ``phrases[j]`` is adjective j in a superclass template drawn by ``random.choice`` from
        :data:`SUPERCLASS_TEMPLATES` with a generator seeded ``seed`` (one draw per adjective, in order).
    """
    rng = random.Random(seed)
    excluded = set(exclude)
    seen: set[str] = set()
    nouns, phrases = [], []
    for part, lexfile, word in rows:
        if lexfile in excluded or word in seen:
            continue
        seen.add(word)
        if part == "noun":
            nouns.append(word)
        else:
            phrases.append(rng.choice(SUPERCLASS_TEMPLATES).format(word))
    return nouns, phrases


def encode_ensemble(encoder: Any, items: Sequence[str], templates: Sequence[str], what: str) -> np.ndarray:
    """Mean over ``templates`` of the raw embeddings of ``template.format(item)``, then L2-normalised.

    Returns:
        float32 ``[len(items), D]``.
    """
    from oodbench.console import progress

    n = len(items)
    order = np.argsort(np.fromiter((len(s) for s in items), dtype=np.int64, count=n), kind="stable")
    total: np.ndarray | None = None
    with progress(quiet=n * len(templates) <= ENCODE_BATCH) as prog:
        task = prog.add_task(f"csp: encoding {what}", total=n * len(templates))
        for template in templates:
            for start in range(0, n, ENCODE_BATCH):
                idx = order[start:start + ENCODE_BATCH]
                emb = np.asarray(encoder.encode_text([template.format(items[j]) for j in idx]), dtype=np.float32)
                if emb.ndim != 2 or len(emb) != len(idx):
                    raise ValueError(f"encode_text returned shape {emb.shape} for {len(idx)} prompts")
                if total is None:
                    total = np.zeros((n, emb.shape[1]), dtype=np.float32)
                total[idx] += emb
                prog.advance(task, len(idx))
    if total is None:
        return np.zeros((0, 0), np.float32)
    return l2_normalize(total / np.float32(len(templates)))


def pool_similarity(candidates: np.ndarray, pos: np.ndarray, quantile: float = 0.95,
                    max_sim: float = 0.95) -> np.ndarray:
    """NegLabel's quantile similarity, set to 1 where a candidate's best ID cosine exceeds ``max_sim``. ``[K]``."""
    sim = candidate_similarity(candidates, pos, quantile)
    for start in range(0, len(candidates), 1024):
        block = candidates[start:start + 1024] @ pos.T
        sim[start:start + 1024][block.max(axis=1) > max_sim] = 1.0
    return sim


def build_pool(encoder: Any, class_names: Sequence[str], rows: Sequence[tuple[str, str, str]],
               exclude: Sequence[str] = DEFAULT_EXCLUDE, seed: int = 0, quantile: float = 0.95,
               fraction: float = 0.15, max_sim: float = 0.95, templates: str = "default") -> MinedLabels:
    """CSP's pool selection (no caching; see :func:`cached_pool`)."""
    t0 = time.perf_counter()
    noun_templates = _NOUN_SETS[templates]
    nouns, phrases = pool_words(rows, exclude, seed)
    pos = encode_ensemble(encoder, list(class_names), noun_templates, "ID prompts")
    parts = [encode_ensemble(encoder, nouns, noun_templates, "nouns"),
             encode_ensemble(encoder, phrases, ADJ_TEMPLATES, "adjective phrases")]
    cand = np.concatenate([p for p in parts if p.size] or [np.zeros((0, pos.shape[1]), np.float32)])
    idx = select_negatives(pool_similarity(cand, pos, quantile, max_sim), len(nouns), fraction)
    words = nouns + phrases
    n_nouns = int(np.sum(idx < len(nouns)))
    log.info("csp: selected %d negative labels (%d nouns, %d adjective phrases) from %d candidates in %.1f s",
             len(idx), n_nouns, len(idx) - n_nouns, len(words), time.perf_counter() - t0)
    return MinedLabels(pos, np.ascontiguousarray(cand[idx]), tuple(words[i] for i in idx), n_nouns)


def cached_pool(encoder: Any, class_names: Sequence[str], corpus: str, **settings: Any) -> tuple[MinedLabels, str]:
    """:func:`build_pool` behind an in-memory and an on-disk cache. Returns (pool, cache key)."""
    from oodbench.runtime import default_cache_dir

    key = mining_cache_key(str(encoder.cache_key), class_names, load_corpus(corpus),
                           {"method": "csp", "version": _CACHE_VERSION, **settings})
    if key in _MEMORY_CACHE:
        _MEMORY_CACHE.move_to_end(key)
        return _MEMORY_CACHE[key], key
    folder = getattr(encoder, "cache_dir", None)
    path = (Path(folder) if folder else default_cache_dir() / "neglabel") / f"csp-{key}.npz"
    pool = _read_mined(path)
    if pool is None:
        pool = build_pool(encoder, class_names, corpus_rows(corpus), **settings)
        _write_mined(path, pool)
    _MEMORY_CACHE[key] = pool
    while len(_MEMORY_CACHE) > _MEMORY_CACHE_SIZE:
        _MEMORY_CACHE.popitem(last=False)
    return pool, key


# ------------------------------------------------------------------------------------------------- class
@register("postprocessors", "csp")
class CSP(NegLabel):
    """CSP (Chen et al., NeurIPS 2024): NegLabel's score over a conjugated semantic pool."""

    display_name: ClassVar[str] = "CSP"
    requires: ClassVar[frozenset[str]] = frozenset({"image", "class_names"})
    search_space: ClassVar[dict[str, list]] = {}
    fit_on: ClassVar[str | None] = "shared"
    needs_encoder: ClassVar[bool] = True
    fit_params: ClassVar[frozenset[str]] = frozenset(
        {"quantile", "neg_fraction", "max_sim", "pool_seed", "exclude", "templates", "corpus"})
    paper: ClassVar[str] = ("Chen et al., Conjugated Semantic Pool Improves OOD Detection with Pre-trained "
                            "Vision-Language Models, NeurIPS 2024")

    def __init__(self, ngroup: int = 100, temperature: float = 1.0, seed: int = 0, quantile: float = 0.95,
                 neg_fraction: float = 0.15, max_sim: float = 0.95, pool_seed: int = 0,
                 exclude: tuple[str, ...] = DEFAULT_EXCLUDE, templates: str = "default",
                 corpus: str = DEFAULT_CORPUS):
        self.ngroup = ngroup
        self.temperature = temperature
        self.seed = seed
        self.quantile = quantile
        self.neg_fraction = neg_fraction
        self.max_sim = max_sim
        self.pool_seed = pool_seed
        self.exclude = exclude
        self.templates = templates
        self.corpus = corpus

    def fit(self, features: Features | None = None, encoder: Any = None) -> "CSP":
        check_in_range("csp", "quantile", self.quantile, 0, 1)
        check_in_range("csp", "neg_fraction", self.neg_fraction, 0, 1, low_open=True)
        check_in_range("csp", "max_sim", self.max_sim, -1, float("inf"))
        if self.templates not in _NOUN_SETS:
            raise UserError(f"csp: templates={self.templates!r} must be one of {', '.join(_NOUN_SETS)}")
        exclude = (self.exclude,) if isinstance(self.exclude, str) else tuple(self.exclude)
        class_names = self._class_names(features, encoder, "build its semantic pool")
        settings = {"exclude": list(exclude), "seed": int(self.pool_seed), "quantile": float(self.quantile),
                    "fraction": float(self.neg_fraction), "max_sim": float(self.max_sim),
                    "templates": self.templates}
        return self._keep(*cached_pool(encoder, class_names, self.corpus, **settings))

