"""One conformance suite over every registered backbone (tiny test models fast, the rest under ``slow``).

A newly registered backbone is tested here without writing a test. Full-size registered architectures are built
with seeded random weights (``pretrained="random"``); other registered backbones with their defaults.
"""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench import registry
from oodbench.backbones import Backbone, create_backbone
from oodbench.backbones.base import CAPABILITIES, FAMILIES, WEIGHT_TYPES, state_dict_hash
from oodbench.errors import IncompatibleError
from oodbench.features.featureset import PER_SAMPLE, SHARED

FULL_SIZE = {"clip_vit_b16", "clip_vit_l14", "swinv2_b", "resnet50"}
CLASSES = ["cat", "dog", "car"]


def _params():
    out = []
    for name in registry.names("backbones"):
        marks = () if name.startswith("test_") else (pytest.mark.slow,)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _build(name):
    return create_backbone(name, pretrained="random") if name in FULL_SIZE else create_backbone(name)


@pytest.fixture(scope="module", params=_params())
def backbone(request):
    """One instance per registered name; pytest groups the tests by it, so each model is built once."""
    return request.param, _build(request.param)


def _batch(b, n=3):
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (50 + 7 * i, 70, 3), dtype=np.uint8)) for i in range(n)]
    return torch.stack([b.preprocess()(im) for im in imgs])


def _per_sample(b):
    names = set(b.provides) & PER_SAMPLE - {"labels"}
    return names - {"logits"} if b.kind == "clip" else names


def test_description(backbone):
    name, b = backbone
    assert isinstance(b, Backbone) and b.kind in ("clip", "classifier")
    assert set(b.provides) <= PER_SAMPLE | SHARED
    assert not b.model.training
    d = b.describe()
    assert d["name"] == b.name and d["kind"] == b.kind and re.fullmatch(r"[0-9a-f]{16}", d["weights_hash"])
    json.dumps(b.preprocess_config())
    json.dumps(d)
    assert set(b.weight_types()) <= set(WEIGHT_TYPES)


def test_features_are_per_sample_and_do_not_touch_weights(backbone):
    name, b = backbone
    x = _batch(b)
    assert x.dtype == torch.float32 and x.shape[1] == 3 and x.shape[2] == x.shape[3]
    before = state_dict_hash(b.model.state_dict())
    names = _per_sample(b)
    out = b.compute_features(x, names)
    assert set(out) == names
    for k, v in out.items():
        assert v.shape[0] == 3 and v.dtype == torch.float32 and torch.isfinite(v).all(), k
    single = b.compute_features(x[1:2], names)
    for k in names:
        torch.testing.assert_close(single[k][0], out[k][1], atol=1e-4, rtol=1e-4)
    assert state_dict_hash(b.model.state_dict()) == before
    again = b.compute_features(x, names)
    assert all(torch.equal(again[k], out[k]) for k in names)


def test_shared_features_fit_the_per_sample_ones(backbone):
    name, b = backbone
    x = _batch(b, 2)
    shared_names = set(b.provides) & SHARED - {"class_names", "prompt"}
    shared = b.shared_features(shared_names, CLASSES, "a photo of a {}")
    assert set(shared) == shared_names
    per = b.compute_features(x, _per_sample(b))
    if b.kind == "clip":
        assert shared["text"].shape == (3, per["image"].shape[1]) and shared["text"].dtype == np.float32
        assert per["local"].shape[2] == per["image"].shape[1]
        assert isinstance(shared["logit_scale"], float) and shared["logit_scale"] > 0
    else:
        w, bias = shared["fc_weight"], shared["fc_bias"]
        assert w.shape == (per["logits"].shape[1], per["penultimate"].shape[1]) and bias.shape == (w.shape[0],)
        np.testing.assert_allclose(per["penultimate"].numpy() @ w.T + bias, per["logits"].numpy(), atol=1e-3, rtol=1e-4)


def test_weights_hash_is_deterministic(backbone):
    name, b = backbone
    assert b.weights_hash() == _build(name).weights_hash()


def test_target_modules_round_trip(backbone):
    name, b = backbone
    params = dict(b.model.named_parameters())
    towers = list(b.towers())
    for wt in b.weight_types():
        targets = b.target_modules(wt)
        assert targets, wt
        order = [(towers.index(t.tower), t.layer) for t in targets]
        assert order == sorted(order) and len(set(order)) == len(order)
        for t in targets:
            assert t.weight_type == wt and t.param is params[t.name]
            assert -1 <= t.layer < b.towers()[t.tower]
            w = t.get().clone()
            assert w.ndim == 2
            t.set(w)
            assert torch.equal(t.get(), w)


def test_layerwise_api(backbone):
    name, b = backbone
    x = _batch(b, 2)
    with torch.no_grad():
        for tower, n in b.towers().items():
            inputs = x if tower == "vision" else b.tokenize(["a photo of a cat", "a dog"])
            ref = b.forward_from(tower, b.hidden(tower, inputs, 0), 0, inputs)
            if tower == "vision":
                full = b.compute_features(x, _per_sample(b))
                g, loc = ("image", "local") if b.kind == "clip" else ("logits", "local_logits")
                torch.testing.assert_close(ref.global_, full[g], atol=1e-4, rtol=1e-4)
                if loc in full:
                    torch.testing.assert_close(ref.local, full[loc], atol=1e-4, rtol=1e-4)
            layers = range(n + 1) if n <= 8 or name.startswith("test_") else sorted({1, n // 2, n - 1, n})
            for layer in layers:
                out = b.forward_from(tower, b.hidden(tower, inputs, layer), layer, inputs)
                torch.testing.assert_close(out.global_, ref.global_, atol=1e-4, rtol=1e-4)
                if ref.local is not None:
                    torch.testing.assert_close(out.local, ref.local, atol=1e-4, rtol=1e-4)


#: The family each built-in registered backbone declares (plugins: any of FAMILIES or None).
EXPECTED_FAMILY = {
    "clip_vit_b16": "clip-b16", "clip_vit_l14": "clip-l14", "swinv2_b": "swinv2-b", "resnet50": "resnet50",
    "digits_clip": "digits", "test_clip_tiny": None, "test_swin_tiny": None, "test_vit_tiny": None,
    "test_resnet_tiny": None,
}


def test_declared_family(backbone):
    name, b = backbone
    assert b.family is None or b.family in FAMILIES
    if name in EXPECTED_FAMILY:
        assert b.family == EXPECTED_FAMILY[name]
    assert b.describe()["family"] == b.family


def test_declared_capabilities_work_and_the_others_refuse(backbone):
    name, b = backbone
    caps = b.capabilities
    assert isinstance(caps, frozenset) and caps <= set(CAPABILITIES)
    x = _batch(b, 2)
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
                inputs = x if tower == "vision" else b.tokenize(["a photo of a cat", "a dog"])
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
