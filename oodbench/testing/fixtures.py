"""Small synthetic inputs of the conformance checks: feature sets, a fake text encoder, tiny backbones, a tiny
in-memory benchmark. Everything is seeded and built in memory in well under a second; nothing is downloaded.

* :func:`clip_splits` / :func:`classifier_splits`: ``{"fit", "id", "ood"}`` :class:`~oodbench.features.Features`
  where ID is easy to tell from OOD (any sensible score reaches AUROC > 0.9);
* :class:`FakeTextEncoder`: a deterministic stand-in for a CLIP text tower (for scores that embed new words);
* :func:`tiny_backbone`: a fresh registered test backbone (``test_clip_tiny``, ``test_vit_tiny`` ...);
* :func:`tiny_benchmark`: a resolved 4-class benchmark of random 32-px images with ID test, ID val and one OOD set.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path

import numpy as np

from oodbench.benchmark import BenchmarkSpec, ResolvedBenchmark, SplitSpec
from oodbench.data.sources import ArraySource
from oodbench.features import Features

#: ID class names of the synthetic feature sets.
CLASS_NAMES = ("goldfish", "airliner", "volcano", "teapot", "umbrella")
#: Prompt template of the synthetic CLIP feature sets.
PROMPT = "the nice {}"


class FakeTextEncoder:
    """Deterministic stand-in for a CLIP text tower: the sum of one seeded random vector per lower-cased word.

    Prompts that share words get similar embeddings, as with a real text encoder; nothing is learned or downloaded.
    It has what postprocessors may use (``encode_text``, ``cache_key``, ``cache_dir``); ``calls`` and
    ``prompts_seen`` record what was encoded.

    Args:
        dim: embedding size D.
        cache_key: identity of the "weights" (part of the keys of caches built from its embeddings).
        cache_dir: folder for such caches (None: a temporary folder removed when the process exits).
    """

    def __init__(self, dim: int = 32, cache_key: str = "fake-text-encoder-v1", cache_dir: str | Path | None = None):
        self.dim = dim
        self.cache_key = cache_key
        self.cache_dir = str(cache_dir) if cache_dir is not None else _scratch_dir("encoder-cache")
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
        """Embeddings ``[len(prompts), dim]`` float32, not normalised (as a real encoder)."""
        self.calls += 1
        self.prompts_seen.extend(prompts)
        out = np.zeros((len(prompts), self.dim), dtype=np.float32)
        for i, p in enumerate(prompts):
            for w in p.lower().split():
                out[i] += self._word(w)
        return out * 3.0


_SCRATCH: dict[str, tempfile.TemporaryDirectory] = {}


def _scratch_dir(name: str) -> str:
    """A temporary folder shared by the checks of this process (removed at exit)."""
    if name not in _SCRATCH:
        _SCRATCH[name] = tempfile.TemporaryDirectory(prefix=f"oodbench-{name}-")
    return _SCRATCH[name].name


# ---------------------------------------------------------------------------------------------- features
def _clip_split(rng, text_emb: np.ndarray, n: int, kind: str, name: str, num_patches: int = 6) -> Features:
    """CLIP features: ID images point at one class text (plus noise), OOD images are random directions."""
    c, d = text_emb.shape
    labels = np.arange(n) % c
    unit_text = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    if kind == "id":
        image = 4.0 * unit_text[labels] + 0.05 * rng.standard_normal((n, d))
        local = image[:, None, :] + 0.3 * rng.standard_normal((n, num_patches, d))
    else:
        image = 4.0 * rng.standard_normal((n, d)) / np.sqrt(d)
        local = 4.0 * rng.standard_normal((n, num_patches, d)) / np.sqrt(d)
        labels = np.full(n, -1)
    image, local = image.astype(np.float32), local.astype(np.float32)
    cos = (image / np.linalg.norm(image, axis=1, keepdims=True)) @ unit_text.T
    shared = {"text": text_emb, "logit_scale": 100.0, "class_names": list(CLASS_NAMES), "prompt": PROMPT}
    arrays = {"labels": labels.astype(np.int64), "image": image, "local": local,
              "logits": (100.0 * cos).astype(np.float32)}
    return Features(arrays, shared, name)


def _classifier_split(rng, weight: np.ndarray, bias: np.ndarray, n: int, kind: str, name: str) -> Features:
    """Classifier features: ID penultimates are ReLU(W_c) patterns of one class, OOD ones flat |noise|."""
    c, f = weight.shape
    labels = np.arange(n) % c
    if kind == "id":
        h = 3.0 * np.maximum(weight[labels], 0) + 0.1 * np.abs(rng.standard_normal((n, f)))
    else:
        h = 0.3 * np.abs(rng.standard_normal((n, f)))
        labels = np.full(n, -1)
    h = h.astype(np.float32)
    logits = (h @ weight.T + bias).astype(np.float32)
    # per-patch logits (4 patches): the image's logits plus patch noise, drawn from their own generator so that the
    # other arrays stay as they were before this feature was added
    noise = np.random.default_rng(len(name) + 7 * n).standard_normal((n, 4, c))
    local = (logits[:, None, :] + 0.5 * noise).astype(np.float32)
    shared = {"fc_weight": weight, "fc_bias": bias, "class_names": list(CLASS_NAMES)}
    arrays = {"labels": labels.astype(np.int64), "penultimate": h, "logits": logits, "local_logits": local}
    return Features(arrays, shared, name)


@functools.lru_cache(maxsize=1)
def clip_splits() -> dict[str, Features]:
    """``{"fit", "id", "ood"}`` CLIP feature sets (D = 32, 5 classes, 6 patches; 60 / 50 / 50 samples).

    Provides ``labels image local logits`` and ``text logit_scale class_names prompt``. Built once per process:
    treat as read-only.
    """
    rng = np.random.default_rng(0)
    text = FakeTextEncoder().encode_text([PROMPT.format(c) for c in CLASS_NAMES])
    return {"fit": _clip_split(rng, text, 60, "id", "id_fit"), "id": _clip_split(rng, text, 50, "id", "id_test"),
            "ood": _clip_split(rng, text, 50, "ood", "ood_test")}


@functools.lru_cache(maxsize=1)
def classifier_splits() -> dict[str, Features]:
    """``{"fit", "id", "ood"}`` classifier feature sets (F = 64, 5 classes; 300 / 60 / 60 samples).

    Provides ``labels penultimate logits local_logits`` (4 patches) and ``fc_weight fc_bias class_names``.
    Built once per process: treat as read-only.
    """
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((len(CLASS_NAMES), 64)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(len(CLASS_NAMES))).astype(np.float32)
    return {"fit": _classifier_split(rng, weight, bias, 300, "id", "id_fit"),
            "id": _classifier_split(rng, weight, bias, 60, "id", "id_test"),
            "ood": _classifier_split(rng, weight, bias, 60, "ood", "ood_test")}


def splits_providing(requires) -> dict[str, Features] | None:
    """The synthetic feature sets (CLIP first, then classifier) that provide every name in ``requires``."""
    for splits in (clip_splits(), classifier_splits()):
        if set(requires) <= splits["id"].names():
            return splits
    return None


# --------------------------------------------------------------------------------------- models and data
#: The registered tiny backbones the modifier and method checks run on (a CLIP and a timm classifier).
TINY_CLIP = "test_clip_tiny"
TINY_CLASSIFIER = "test_vit_tiny"


def tiny_backbone(name: str = TINY_CLIP):
    """A freshly built registered test backbone with seeded random weights (a new object on every call)."""
    from oodbench.backbones import create_backbone

    return create_backbone(name, pretrained="random", seed=0)


#: Class names of :func:`tiny_benchmark`.
BENCHMARK_CLASSES = ("cat", "dog", "car", "tree")


def tiny_benchmark(n_test: int = 12, n_val: int = 16, n_ood: int = 8, size: int = 32) -> ResolvedBenchmark:
    """A resolved in-memory benchmark: 4 ID classes, ID test, ID val and one far OOD set of random images.

    ID images of class ``c`` are noise around a class-specific colour, OOD images uniform noise; the images only
    need to be valid inputs (methods are checked for their contract here, not for accuracy).
    """
    rng = np.random.default_rng(7)
    colours = rng.integers(30, 225, (len(BENCHMARK_CLASSES), 3))

    def id_source(name: str, n: int) -> ArraySource:
        labels = np.arange(n) % len(BENCHMARK_CLASSES)
        noise = rng.integers(-30, 31, (n, size, size, 3))
        images = np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
        return ArraySource(name, images, labels)

    def split(name: str, n: int, group: str) -> SplitSpec:
        return SplitSpec(name=name, path=f"embedded:conformance/{name}", format="array", expected=n, group=group,
                         source="random images (oodbench.testing)")

    spec = BenchmarkSpec(
        name="conformance", description="tiny in-memory benchmark of the conformance checks",
        id_test=split("ID test", n_test, "id"), id_val=split("ID val", n_val, "id"),
        ood=(split("noise", n_ood, "far"),), class_names=BENCHMARK_CLASSES, prompt="a photo of a {}")
    ood = ArraySource("noise", rng.integers(0, 256, (n_ood, size, size, 3)).astype(np.uint8), np.full(n_ood, -1))
    return ResolvedBenchmark(spec=spec, id_test=id_source("ID test", n_test), id_val=id_source("ID val", n_val),
                             ood={"noise": ood})
