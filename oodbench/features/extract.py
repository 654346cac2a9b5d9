"""Feature extraction: a backbone over an image source, batched by a DataLoader, written into the cache.

:func:`extract_features` gives the :class:`~oodbench.features.featureset.Features` of one split. Per-sample
arrays are extracted shard by shard (a shard = ``shard_size`` consecutive images) and written atomically to
the keyed cache (:mod:`oodbench.features.cache`): a second call costs no forward pass, an interrupted call
resumes from the finished shards, and asking later for an array that is not cached yet runs the model only
for that array. Unreadable images are found while loading (no separate pass) and skipped (reported by path,
counted in ``Features.meta``) or fatal (``on_bad="fail"``).

CLIP ``logits`` are never extracted: they are derived from the cached image embeddings and the class-prompt
text embeddings, ``logit_scale * normalize(image) @ normalize(text).T``, so changing class names or the
prompt costs no image forward pass.

Model-level entries (``text``, ``logit_scale``, ``fc_weight``, ``fc_bias``; plus ``class_names`` and
``prompt``) come from ``backbone.shared_features`` (:func:`compute_shared`). They are cached too, keyed by
the weights, plan, class names and prompt: they are cheap next to the images, but encoding 1,000 prompts with
a full text tower still takes seconds on a CPU, which a warm run should not pay. They are computed in fp32
whatever ``precision`` the images use.

Under ``torchrun`` (:mod:`oodbench.distributed`) the forward batches of a split are dealt to the processes and
rank 0 alone opens, writes and reads the cache and computes the model-level entries: the entry written by N
processes is the one one process writes (same key, same files, same bytes). Rank 0 returns the features; the
other ranks return empty ones (only rank 0 scores).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

import numpy as np
import torch

from oodbench import distributed
from oodbench.backbones.base import Backbone, to_numpy
from oodbench.benchmark import ResolvedBenchmark, Role
from oodbench.data.sources import ImageSource
from oodbench.errors import DataError, IncompatibleError, UserError
from oodbench.features.cache import INDEX, CorruptShard, Entry, FeatureCache, key_ingredients, shared_ingredients
from oodbench.hashing import hash_json
from oodbench.features.featureset import PER_SAMPLE, SHARED, Features
from oodbench.features.runner import PRECISIONS, run_shards

log = logging.getLogger("oodbench")

DEFAULT_BATCH_SIZE = 128
DEFAULT_SHARD_SIZE = 1024
STATIC_SHARED = frozenset({"class_names", "prompt"})


def plan_request(backbone: Backbone, names: Iterable[str]) -> tuple[set[str], set[str], bool]:
    """Split requested names into (per-sample arrays to extract, shared entries, derive CLIP logits?).

    Raises:
        UserError: an unknown feature name.
        IncompatibleError: the backbone cannot produce a requested feature.
    """
    names = set(names)
    unknown = names - PER_SAMPLE - SHARED
    if unknown:
        raise UserError(f"unknown feature name(s) {', '.join(sorted(unknown))}; known: "
                        f"{', '.join(sorted(PER_SAMPLE | SHARED))}")
    per_sample = (names & PER_SAMPLE) - {"labels"}
    shared = names & SHARED
    derive = backbone.kind == "clip" and "logits" in per_sample
    if derive:
        per_sample = (per_sample - {"logits"}) | {"image"}
        shared |= {"text", "logit_scale"}
    lacking = (per_sample | (shared - STATIC_SHARED)) - set(backbone.provides)
    if lacking:
        raise IncompatibleError(f"backbone {backbone.name} cannot produce {', '.join(sorted(lacking))}; it provides "
                                f"{', '.join(sorted(backbone.provides))}")
    return per_sample, shared, derive


def compute_shared(backbone: Backbone, names: Iterable[str], class_names=None, prompt: str | None = None, *,
                   cache: FeatureCache | None = None, plan_hash: str = "none") -> dict[str, Any]:
    """Model-level entries ``names`` (subset of :data:`~oodbench.features.featureset.SHARED`), cached by key.

    Tensors become float32 numpy arrays, the logit scale a float.
    """
    names = set(names) & SHARED
    model_names = names - STATIC_SHARED
    if model_names & {"text"} and not class_names:
        raise UserError("text features need the class names (and prompt) of the benchmark")
    out: dict[str, Any] = {}
    if "class_names" in names:
        out["class_names"] = list(class_names or ())
    if "prompt" in names:
        out["prompt"] = prompt
    if not model_names:
        return out
    ingredients = shared_ingredients(backbone, plan_hash, model_names, class_names, prompt)
    cached = cache.load_shared(ingredients) if cache is not None else None
    if cached is None:
        t0 = time.perf_counter()
        with torch.inference_mode():
            raw = backbone.shared_features(model_names, list(class_names or ()), prompt or "{}")
        cached = {k: _plain(v) for k, v in raw.items() if k in model_names}
        log.debug("shared features %s computed in %.2f s", sorted(model_names), time.perf_counter() - t0)
        if cache is not None:
            cache.save_shared(ingredients, cached)
    missing = model_names - set(cached)
    if missing:
        raise RuntimeError(f"backbone {backbone.name}.shared_features did not return {', '.join(sorted(missing))}")
    out.update(cached)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return float(v.item()) if v.numel() == 1 and v.ndim == 0 else to_numpy(v).astype(np.float32, copy=False)
    if isinstance(v, np.ndarray):
        return v.astype(np.float32, copy=False) if v.dtype.kind == "f" else v
    return float(v) if isinstance(v, (np.floating, np.integer)) else v


def clip_logits(image: np.ndarray, text: np.ndarray, logit_scale: float) -> np.ndarray:
    """``logit_scale * normalize(image) @ normalize(text).T`` in float32: ``[N, D] x [C, D] -> [N, C]``."""
    img = np.asarray(image, dtype=np.float32)
    txt = np.asarray(text, dtype=np.float32)
    img = img / np.linalg.norm(img, axis=-1, keepdims=True)
    txt = txt / np.linalg.norm(txt, axis=-1, keepdims=True)
    return (np.float32(logit_scale) * (img @ txt.T)).astype(np.float32, copy=False)


def extract_features(backbone: Backbone, source: ImageSource, names: Iterable[str], *,
                     cache: FeatureCache | None = None, plan_hash: str = "none",
                     batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int | None = None, precision: str = "fp32",
                     device: str | torch.device | None = None, on_bad: str = "skip",
                     shared: dict[str, Any] | None = None, class_names=None, prompt: str | None = None,
                     shard_size: int = DEFAULT_SHARD_SIZE, decode: str = "pil") -> Features:
    """Features ``names`` of every readable image of ``source``.

    Args:
        backbone: the model (with any modifier already applied; its plan hash is ``plan_hash``).
        source: the images; ``labels`` of the result come from it.
        names: feature names (:mod:`oodbench.features.featureset`), per-sample and/or shared.
        cache: where arrays are kept between runs; None extracts in memory only.
        plan_hash: hash of the modifier plan applied to the backbone (``"none"`` for the pristine model).
        batch_size: images per forward pass.
        num_workers: DataLoader worker processes; None = 0 for in-memory sources, else a default by machine
            (:func:`oodbench.features.runner.default_workers`).
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"bf16"`` (autocast); part of the cache key.
        device: where the model runs (None: where the backbone is).
        on_bad: unreadable images are left out and reported (``"skip"``) or raise :class:`DataError` (``"fail"``).
        shared: model-level entries computed before (:func:`compute_shared`), reused as given.
        class_names, prompt: needed when text features are requested and ``shared`` lacks them.
        shard_size: images per cache shard for a new key (an existing key keeps its own).
        decode: ``"pil"`` (default, the official preprocessing) or ``"gpu"`` (batched JPEG decoding, resize
            and crop on ``device``: :mod:`oodbench.data.decode`); part of the cache key when not the default.

    Returns:
        Features with the requested per-sample arrays (rows = readable images, source order), ``labels``, the
        requested shared entries, and ``meta``: ``cache_key``, ``cache_path``, ``n_images``, ``n_used``,
        ``skipped`` (``[{"path", "reason"}]``), ``precision``, ``plan_hash``, ``forward_batches``, ``seconds``.
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if on_bad not in ("skip", "fail"):
        raise UserError(f"on_bad must be skip or fail, got '{on_bad}'")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    from oodbench.data.decode import check_decode

    check_decode(decode)
    t0 = time.perf_counter()
    per_sample, shared_names, derive = plan_request(backbone, names)
    w = distributed.world()
    shared_out = dict(shared or {})
    # (rank 0 alone holds the shared entries: its view decides, so every rank takes part in the same collectives)
    if distributed.broadcast_object(bool(shared_names - set(shared_out)) if w.is_main else None):
        shared_out.update(distributed.on_main(lambda: compute_shared(
            backbone, shared_names - set(shared_out), class_names, prompt, cache=cache, plan_hash=plan_hash),
            phase="extract") or {})
    n = len(source)
    if n == 0:
        raise DataError(f"{source.name}: no images to extract features from")
    ingredients = key_ingredients(backbone, plan_hash, source, precision, decode=decode,
                                  device=device if device is not None else backbone.device)
    if batch_size > shard_size:
        shard_size = batch_size
    shard_size = -(-shard_size // batch_size) * batch_size  # whole batches per shard
    # Several processes: rank 0 alone reads and writes the cache (the others may not even see the same disk);
    # it decides what is missing, every rank forwards its share, rank 0 loads the arrays and the others return
    # an empty Features (rank 0 scores; oodbench.orchestration.pipeline).
    entry: Entry = distributed.on_main(lambda: _open_entry(cache, ingredients, n, shard_size), phase="extract")
    if w.active:
        shard_size = distributed.broadcast_object(entry.shard_size if w.is_main else None)
        if not w.is_main:
            entry = Entry(hash_json(ingredients), n, shard_size)
    batches = 0
    for attempt in (1, 2):  # a second pass only when a cached file turned out unreadable (then deleted)
        todo = distributed.broadcast_object(_todo(entry, per_sample) if w.is_main else None)
        if todo:
            batches += run_shards(backbone, source, entry, todo, batch_size=batch_size, num_workers=num_workers,
                                  precision=precision, device=device, on_bad=on_bad, decode=decode)
        loaded = distributed.on_main(lambda: _consolidate_load(entry, source, per_sample, on_bad, attempt),
                                     phase="extract")
        if not distributed.broadcast_object(loaded is None if w.is_main else None):
            break
    if not w.is_main:
        return Features({}, {}, source.name, {"source": source.name, "cache_key": entry.key, "n_images": n,
                                              "rank": w.rank, "forward_batches": batches})
    arrays, skipped = loaded
    if derive:
        arrays["logits"] = clip_logits(arrays["image"], shared_out["text"], shared_out["logit_scale"])
    requested = set(names)
    keep = {k: v for k, v in arrays.items() if k in requested or k == "labels"}
    shared_keep = {k: v for k, v in shared_out.items() if k in requested or k in shared_names}
    meta = {"source": source.name, "fingerprint": source.fingerprint(), "cache_key": entry.key,
            "cache_path": str(entry.path) if entry.path is not None else None, "n_images": n,
            "n_used": int(len(keep["labels"])), "skipped": skipped, "precision": precision, "decode": decode,
            "plan_hash": plan_hash, "forward_batches": batches, "seconds": round(time.perf_counter() - t0, 3)}
    return Features(keep, shared_keep, source.name, meta)


def _open_entry(cache: FeatureCache | None, ingredients: dict[str, Any], n: int, shard_size: int) -> Entry:
    if cache is not None:
        return cache.entry(ingredients, n, shard_size)
    return Entry(hash_json(ingredients), n, shard_size)


def _todo(entry: Entry, per_sample: set[str]) -> dict[int, set[str]]:
    """Shard -> the arrays it lacks (an empty set: only the file check of a shard without an index)."""
    todo = {s: {x for x in per_sample if not entry.has(x, s)} for s in range(entry.num_shards)}
    return {s: need for s, need in todo.items() if need or (per_sample and not entry.has(INDEX, s))}


def _consolidate_load(entry: Entry, source: ImageSource, per_sample: set[str], on_bad: str, attempt: int):
    """Join the shards and load the arrays; None when a cached file was unreadable (deleted: extract again)."""
    try:
        if hasattr(entry, "consolidate"):
            for x in (*sorted(per_sample), INDEX):
                entry.consolidate(x)
        return _load(entry, source, per_sample, on_bad)
    except CorruptShard as exc:
        if attempt == 2:
            raise
        log.warning("feature cache: %s; recomputing it", exc)
        return None


def _load(entry: Entry, source: ImageSource, per_sample: set[str], on_bad: str):
    """Arrays of the complete entry, the labels of the readable rows, and the skipped files."""
    arrays: dict[str, np.ndarray] = {}
    bad = [b for s in range(entry.num_shards) for b in entry.read_bad(s)]
    if bad and on_bad == "fail":
        i, reason = bad[0]
        raise DataError(f"{source.name}: unreadable image {source.describe(int(i))} ({reason}) — fix or remove it, "
                        f"or pass --on-bad skip to leave unreadable images out")
    if per_sample:
        index = np.asarray(entry.load(INDEX), dtype=np.int64)
        for x in sorted(per_sample):
            arrays[x] = entry.load(x)
            if len(arrays[x]) != len(index):
                raise RuntimeError(f"feature cache {entry.path}: '{x}' has {len(arrays[x])} rows, expected {len(index)}")
        if len(index) == 0:
            raise DataError(f"{source.name}: none of its {len(source):,} images could be read")
    else:
        index = np.arange(len(source)) if not bad else np.setdiff1d(np.arange(len(source)), [int(i) for i, _ in bad])
    arrays["labels"] = np.asarray(source.labels)[index]
    skipped = [{"path": source.describe(int(i)), "reason": reason} for i, reason in bad]
    if skipped:
        shown = "; ".join(f"{s['path']} ({s['reason']})" for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning("%s: %d unreadable image(s) left out: %s%s", source.name, len(skipped), shown, more)
    return arrays, skipped


def extract_benchmark(backbone: Backbone, resolved: ResolvedBenchmark, names: Iterable[str], *,
                      roles: Iterable[Role | str] | None = None, cache: FeatureCache | None = None,
                      plan_hash: str = "none", **kwargs) -> dict[str, Features]:
    """:func:`extract_features` for the splits of a resolved benchmark (shared entries computed once).

    Args:
        roles: which splits (:class:`~oodbench.benchmark.Role`); None = all.
        kwargs: passed on to :func:`extract_features` (batch_size, num_workers, precision, device, on_bad).

    Returns:
        ``{split name: Features}`` in :meth:`ResolvedBenchmark.splits` order; ``meta`` also holds ``role`` and
        ``group``.
    """
    names = set(names)
    _, shared_names, _ = plan_request(backbone, names)
    spec = resolved.spec
    shared = distributed.on_main(lambda: compute_shared(backbone, shared_names, spec.class_names, spec.prompt,
                                                        cache=cache, plan_hash=plan_hash), phase="extract") or {}
    out: dict[str, Features] = {}
    for split in resolved.splits(*(roles or ())):
        feats = extract_features(backbone, split.source, names, cache=cache, plan_hash=plan_hash, shared=shared,
                                 **kwargs)
        feats.name = split.name
        feats.meta.update(role=str(split.role), group=split.group)
        out[split.name] = feats
    return out
