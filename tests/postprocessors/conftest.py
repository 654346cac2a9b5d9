"""Fixtures of the postprocessor tests: a deterministic fake text encoder and small CLIP / classifier features."""

from __future__ import annotations

import numpy as np
import pytest

from oodbench.features import Features

from pp_helpers import CLASS_NAMES, FakeTextEncoder


@pytest.fixture(scope="session")
def neglabel_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("neglabel-cache")


@pytest.fixture
def fake_encoder(neglabel_cache_dir):
    return FakeTextEncoder(cache_dir=neglabel_cache_dir)


def _clip_split(rng, text_emb, n, kind, name, num_patches=6):
    """CLIP features: ID images point at one class text (plus noise), OOD images are random directions."""
    c, d = text_emb.shape
    labels = np.arange(n) % c  # balanced classes
    if kind == "id":
        unit = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
        image = 4.0 * unit[labels] + 0.05 * rng.standard_normal((n, d))
        local = image[:, None, :] + 0.3 * rng.standard_normal((n, num_patches, d))
    else:
        image = 4.0 * rng.standard_normal((n, d)) / np.sqrt(d)
        local = 4.0 * rng.standard_normal((n, num_patches, d)) / np.sqrt(d)
        labels = np.full(n, -1)
    image, local = image.astype(np.float32), local.astype(np.float32)
    unit_text = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    cos = (image / np.linalg.norm(image, axis=1, keepdims=True)) @ unit_text.T
    shared = {"text": text_emb, "logit_scale": 100.0, "class_names": list(CLASS_NAMES), "prompt": "the nice {}"}
    arrays = {"labels": labels.astype(np.int64), "image": image, "local": local,
              "logits": (100.0 * cos).astype(np.float32)}
    return Features(arrays, shared, name)


def _classifier_split(rng, weight, bias, n, kind, name):
    """Classifier features: ID penultimates are ReLU(W_c) patterns of one class, OOD ones flat |noise|."""
    c, f = weight.shape
    labels = np.arange(n) % c  # balanced classes
    if kind == "id":
        h = 3.0 * np.maximum(weight[labels], 0) + 0.1 * np.abs(rng.standard_normal((n, f)))
    else:
        h = 0.3 * np.abs(rng.standard_normal((n, f)))
        labels = np.full(n, -1)
    h = h.astype(np.float32)
    shared = {"fc_weight": weight, "fc_bias": bias, "class_names": list(CLASS_NAMES)}
    arrays = {"labels": labels.astype(np.int64), "penultimate": h, "logits": (h @ weight.T + bias).astype(np.float32)}
    return Features(arrays, shared, name)


@pytest.fixture(scope="session")
def clip_splits():
    """``{"fit", "id", "ood"}`` CLIP feature sets (D = 32, 5 classes, 6 patches)."""
    rng = np.random.default_rng(0)
    text = FakeTextEncoder().encode_text([f"the nice {c}" for c in CLASS_NAMES])
    return {"fit": _clip_split(rng, text, 60, "id", "id_fit"), "id": _clip_split(rng, text, 50, "id", "id_test"),
            "ood": _clip_split(rng, text, 50, "ood", "ood_test")}


@pytest.fixture(scope="session")
def classifier_splits():
    """``{"fit", "id", "ood"}`` classifier feature sets (F = 64, 5 classes; 300 fit samples)."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((len(CLASS_NAMES), 64)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(len(CLASS_NAMES))).astype(np.float32)
    return {"fit": _classifier_split(rng, weight, bias, 300, "id", "id_fit"),
            "id": _classifier_split(rng, weight, bias, 60, "id", "id_test"),
            "ood": _classifier_split(rng, weight, bias, 60, "ood", "ood_test")}
