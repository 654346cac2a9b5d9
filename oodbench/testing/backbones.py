"""Conformance checks of backbones (the model wrappers that produce features and expose modifiable weights).

A check takes a **backbone object**: a registered name (built with ``create_backbone(name)``), a zero-argument
factory returning a :class:`~oodbench.backbones.base.Backbone` (e.g. ``functools.partial(create_backbone,
"clip_vit_b16", pretrained="random")``), or a built backbone. Names and factories are built once and reused by
the checks that follow (the last one built is kept), so a suite builds each model once.

Checks: the description (kind, ``provides``, eval mode, JSON-able ``describe()`` / ``preprocess_config()``,
weight types); features are per-sample, float32, finite, batch-independent and leave the weights untouched;
shared features fit the per-sample ones (CLIP text width, classifier ``penultimate @ W.T + b = logits``); the
weights hash is deterministic (names and factories only: the model is built twice); ``target_modules`` are
ordered, point at the model's parameters and round-trip ``get`` / ``set``; the layer-wise API reproduces the full
forward from every layer; the declared family; declared capabilities work and the others raise
:class:`~oodbench.errors.IncompatibleError` naming the capability.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.backbones import Backbone, create_backbone
from oodbench.backbones.base import CAPABILITIES, FAMILIES, WEIGHT_TYPES, state_dict_hash
from oodbench.errors import IncompatibleError
from oodbench.features.featureset import PER_SAMPLE, SHARED

from . import Check

#: Class names and prompt of the shared-feature checks.
CLASSES = ["cat", "dog", "car"]
PROMPTS = ["a photo of a cat", "a dog"]

_BUILT: dict[str, Any] = {"key": None, "backbone": None}


def registered() -> list[str]:
    """Registered backbone names (checks build them with their default weights)."""
    from oodbench.registry import names

    return names("backbones")


def object_id(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Backbone):
        return obj.name
    args = getattr(obj, "args", ())  # functools.partial(create_backbone, name, ...)
    if args and isinstance(args[0], str):
        return args[0]
    return getattr(obj, "__name__", type(obj).__name__)


def _rebuildable(obj: Any) -> bool:
    return not isinstance(obj, Backbone)


def _make(obj: Any) -> Backbone:
    b = create_backbone(obj) if isinstance(obj, str) else obj()
    assert isinstance(b, Backbone), f"{object_id(obj)}: the factory returned {type(b).__name__}, not a Backbone"
    return b


def backbone_of(obj: Any) -> Backbone:
    """The backbone an object stands for (names and factories: built once, the last one kept)."""
    if isinstance(obj, Backbone):
        return obj
    if _BUILT["key"] is not obj and _BUILT["key"] != obj:
        _BUILT.update(key=None, backbone=None)  # free the previous model first
        _BUILT.update(key=obj, backbone=_make(obj))
    return _BUILT["backbone"]


def checks_for(obj: Any) -> Iterator[Check]:
    for func in (check_description, check_features_are_per_sample_and_do_not_touch_weights,
                 check_shared_features_fit_the_per_sample_ones):
        yield Check(func)
    if _rebuildable(obj):
        yield Check(check_weights_hash_is_deterministic)
    for func in (check_target_modules_round_trip, check_layerwise_api, check_declared_family,
                 check_declared_capabilities_work_and_the_others_refuse):
        yield Check(func)


# ------------------------------------------------------------------------------------------------ helpers
def image_batch(b: Backbone, n: int = 3) -> torch.Tensor:
    """``n`` random RGB images of different sizes, through the backbone's own preprocessing."""
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (50 + 7 * i, 70, 3), dtype=np.uint8)) for i in range(n)]
    return torch.stack([b.preprocess()(im) for im in imgs])


def per_sample_names(b: Backbone) -> set[str]:
    names = set(b.provides) & PER_SAMPLE - {"labels"}
    return names - {"logits"} if b.kind == "clip" else names


def _tower_inputs(b: Backbone, tower: str, images: torch.Tensor) -> Any:
    return images if tower == "vision" else b.tokenize(PROMPTS)


# ------------------------------------------------------------------------------------------------- checks
def check_description(obj: Any) -> None:
    """A Backbone of kind clip/classifier, in eval mode, with known feature names, JSON-able descriptions, a
    16-hex weights hash and known weight types."""
    b = backbone_of(obj)
    assert isinstance(b, Backbone) and b.kind in ("clip", "classifier"), f"kind {getattr(b, 'kind', None)!r}"
    assert set(b.provides) <= PER_SAMPLE | SHARED, f"unknown feature names {sorted(set(b.provides) - PER_SAMPLE - SHARED)}"
    assert not b.model.training, "the model must be in eval mode"
    d = b.describe()
    assert d["name"] == b.name and d["kind"] == b.kind and re.fullmatch(r"[0-9a-f]{16}", d["weights_hash"])
    json.dumps(b.preprocess_config())
    json.dumps(d)
    assert set(b.weight_types()) <= set(WEIGHT_TYPES), f"unknown weight types {set(b.weight_types()) - set(WEIGHT_TYPES)}"


def check_features_are_per_sample_and_do_not_touch_weights(obj: Any) -> None:
    """Float32 finite features with N rows; one sample alone gives its row of the batch; weights untouched;
    a second call gives identical features."""
    b = backbone_of(obj)
    x = image_batch(b)
    assert x.dtype == torch.float32 and x.shape[1] == 3 and x.shape[2] == x.shape[3], f"preprocessed {x.dtype} {tuple(x.shape)}"
    before = state_dict_hash(b.model.state_dict())
    names = per_sample_names(b)
    out = b.compute_features(x, names)
    assert set(out) == names, f"asked for {sorted(names)}, got {sorted(out)}"
    for k, v in out.items():
        assert v.shape[0] == 3 and v.dtype == torch.float32 and torch.isfinite(v).all(), k
    single = b.compute_features(x[1:2], names)
    for k in names:
        torch.testing.assert_close(single[k][0], out[k][1], atol=1e-4, rtol=1e-4)
    assert state_dict_hash(b.model.state_dict()) == before, "computing features changed the weights"
    again = b.compute_features(x, names)
    assert all(torch.equal(again[k], out[k]) for k in names), "a second call gave different features"


def check_shared_features_fit_the_per_sample_ones(obj: Any) -> None:
    """CLIP: text ``[C, D]`` float32 with D the image width, local features of width D, positive logit scale.
    Classifier: ``penultimate @ fc_weight.T + fc_bias`` equals the logits."""
    b = backbone_of(obj)
    x = image_batch(b, 2)
    shared_names = set(b.provides) & SHARED - {"class_names", "prompt"}
    shared = b.shared_features(shared_names, CLASSES, "a photo of a {}")
    assert set(shared) == shared_names
    per = b.compute_features(x, per_sample_names(b))
    if b.kind == "clip":
        assert shared["text"].shape == (3, per["image"].shape[1]) and shared["text"].dtype == np.float32
        assert per["local"].shape[2] == per["image"].shape[1]
        assert isinstance(shared["logit_scale"], float) and shared["logit_scale"] > 0
    else:
        w, bias = shared["fc_weight"], shared["fc_bias"]
        assert w.shape == (per["logits"].shape[1], per["penultimate"].shape[1]) and bias.shape == (w.shape[0],)
        np.testing.assert_allclose(per["penultimate"].numpy() @ w.T + bias, per["logits"].numpy(), atol=1e-3, rtol=1e-4)


def check_weights_hash_is_deterministic(obj: Any) -> None:
    """Building the backbone again gives the same weights hash."""
    assert _rebuildable(obj), "needs a name or a factory (a built backbone cannot be rebuilt)"
    assert backbone_of(obj).weights_hash() == _make(obj).weights_hash()


def check_target_modules_round_trip(obj: Any) -> None:
    """Per weight type: targets ordered by (tower, layer) without duplicates, each the model's own parameter,
    2-D, with a valid layer; ``set(get())`` round-trips."""
    b = backbone_of(obj)
    params = dict(b.model.named_parameters())
    towers = list(b.towers())
    for wt in b.weight_types():
        targets = b.target_modules(wt)
        assert targets, f"weight type {wt} is declared but has no targets"
        order = [(towers.index(t.tower), t.layer) for t in targets]
        assert order == sorted(order) and len(set(order)) == len(order), f"{wt}: targets out of order or repeated"
        for t in targets:
            assert t.weight_type == wt and t.param is params[t.name], t.key
            assert -1 <= t.layer < b.towers()[t.tower], t.key
            w = t.get().clone()
            assert w.ndim == 2, t.key
            t.set(w)
            assert torch.equal(t.get(), w), t.key


def check_layerwise_api(obj: Any) -> None:
    """``forward_from(tower, hidden(tower, x, l), l, x)`` equals the full forward for every layer l (deep towers
    of full-size models: the first, middle and last layers)."""
    b = backbone_of(obj)
    x = image_batch(b, 2)
    with torch.no_grad():
        for tower, n in b.towers().items():
            inputs = _tower_inputs(b, tower, x)
            ref = b.forward_from(tower, b.hidden(tower, inputs, 0), 0, inputs)
            if tower == "vision":
                full = b.compute_features(x, per_sample_names(b))
                g, loc = ("image", "local") if b.kind == "clip" else ("logits", "local_logits")
                torch.testing.assert_close(ref.global_, full[g], atol=1e-4, rtol=1e-4)
                if loc in full:
                    torch.testing.assert_close(ref.local, full[loc], atol=1e-4, rtol=1e-4)
            layers = range(n + 1) if n <= 8 or b.name.startswith("test_") else sorted({1, n // 2, n - 1, n})
            for layer in layers:
                out = b.forward_from(tower, b.hidden(tower, inputs, layer), layer, inputs)
                torch.testing.assert_close(out.global_, ref.global_, atol=1e-4, rtol=1e-4)
                if ref.local is not None:
                    torch.testing.assert_close(out.local, ref.local, atol=1e-4, rtol=1e-4)


def check_declared_family(obj: Any) -> None:
    """``family`` is None or one of FAMILIES, and ``describe()`` records it."""
    b = backbone_of(obj)
    assert b.family is None or b.family in FAMILIES, f"family {b.family!r} is not one of {FAMILIES}"
    assert b.describe()["family"] == b.family


def check_declared_capabilities_work_and_the_others_refuse(obj: Any) -> None:
    """Each declared capability works (layer-wise towers, local outputs, the MLP-stage entry point, the text
    encoder); each undeclared one raises IncompatibleError naming it; ``require`` agrees."""
    b = backbone_of(obj)
    caps = b.capabilities
    assert isinstance(caps, frozenset) and caps <= set(CAPABILITIES), f"capabilities {caps!r}"
    x = image_batch(b, 2)
    with torch.no_grad():
        if "layerwise" in caps:
            assert b.towers() and all(n > 0 for n in b.towers().values())
        else:
            with pytest.raises(IncompatibleError):
                b.towers()
        if "local_features" in caps:
            n = b.towers()["vision"]
            assert b.forward_from("vision", b.hidden("vision", x, n), n, x).local.shape[0] == 2
        if "mlp_stage" in caps:
            for tower, n in b.towers().items():
                inputs = _tower_inputs(b, tower, x)
                for layer in sorted({0, n - 1}):
                    h = b.hidden(tower, inputs, layer)
                    full = b.forward_from(tower, h, layer, inputs)
                    split = b.forward_from_mlp(tower, b.hidden_mlp(tower, h, layer, inputs), layer, inputs)
                    torch.testing.assert_close(split.global_, full.global_, atol=1e-5, rtol=1e-5)
        else:
            with pytest.raises(IncompatibleError, match="mlp_stage"):
                b.hidden_mlp("vision", x, 0)
            with pytest.raises(IncompatibleError, match="mlp_stage"):
                b.forward_from_mlp("vision", x, 0)
        if "fast_arithmetic" in caps:  # the fused arithmetic equals the default to float32 rounding
            for tower, n in b.towers().items():
                inputs = _tower_inputs(b, tower, x)
                h = b.hidden(tower, inputs, 0)
                plain = b.forward_from(tower, h, 0, inputs)
                with b.fast_arithmetic():
                    fast = b.forward_from(tower, h, 0, inputs)
                torch.testing.assert_close(fast.global_, plain.global_, atol=1e-5, rtol=1e-4)
        if "text_encoder" in caps:
            enc = b.text_encoder()
            emb = enc.encode_text(CLASSES)
            ref = b.shared_features({"text"}, CLASSES, "{}")["text"]
            np.testing.assert_allclose(emb, ref, atol=1e-5, rtol=1e-5)
            assert isinstance(enc.cache_key, str) and enc.cache_key
        else:
            with pytest.raises(IncompatibleError, match="text_encoder"):
                b.text_encoder()
    for cap in CAPABILITIES:
        if cap in caps:
            b.require(cap, "a test")
        else:
            with pytest.raises(IncompatibleError, match=f"a test needs a backbone with '{cap}'"):
                b.require(cap, "a test")
