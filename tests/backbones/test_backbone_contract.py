"""One conformance suite over every registered backbone (tiny test models fast, the rest under ``slow``).

A newly registered backbone is tested here without writing a test: the checks live in
:mod:`oodbench.testing.backbones` (exported for plugin authors). Full-size registered architectures are built with
seeded random weights (``pretrained="random"``); other registered backbones with their defaults.
"""

import functools

import pytest
import torch

from oodbench import registry
from oodbench.backbones import create_backbone
from oodbench.testing import checks, parametrize_with_checks
from oodbench.testing import backbones as suite

FULL_SIZE = {"clip_vit_b16", "clip_vit_l14", "swinv2_b", "resnet50"}


def _objects():
    """Registered names; full-size ones as seeded random-weight factories; all but ``test_*`` marked slow."""
    out = []
    for name in registry.names("backbones"):
        obj = functools.partial(create_backbone, name, pretrained="random") if name in FULL_SIZE else name
        out.append(pytest.param(obj, marks=() if name.startswith("test_") else (pytest.mark.slow,)))
    return out


@parametrize_with_checks("backbones", _objects())
def test_backbone_conformance(obj, check):
    check(obj)


#: The family each built-in registered backbone declares (plugins: any of FAMILIES or None).
EXPECTED_FAMILY = {
    "clip_vit_b16": "clip-b16", "clip_vit_l14": "clip-l14", "swinv2_b": "swinv2-b", "resnet50": "resnet50",
    "digits_clip": "digits", "test_clip_tiny": None, "test_swin_tiny": None, "test_vit_tiny": None,
    "test_resnet_tiny": None,
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n.startswith("test_") else (pytest.mark.slow,))
                                  for n in EXPECTED_FAMILY])
def test_builtin_family(name):
    b = suite.backbone_of(functools.partial(create_backbone, name, pretrained="random") if name in FULL_SIZE else name)
    assert b.family == EXPECTED_FAMILY[name]


# ------------------------------------------------------------------------- the checks catch what they promise to
def test_every_check_runs_on_names_and_a_built_backbone_skips_only_the_rebuild():
    funcs = {n for n in dir(suite) if n.startswith("check_")}
    assert {c.func.__name__ for c in checks("backbones", "test_vit_tiny")} == funcs
    built = create_backbone("test_vit_tiny")
    assert {c.func.__name__ for c in checks("backbones", built)} == funcs - {"check_weights_hash_is_deterministic"}


def test_feature_check_rejects_features_that_change_the_weights():
    b = create_backbone("test_vit_tiny")
    real = b.compute_features

    def leaky(images, names):
        with torch.no_grad():
            next(b.model.parameters()).add_(1e-3)
        return real(images, names)

    b.compute_features = leaky
    with pytest.raises(AssertionError, match="changed the weights"):
        suite.check_features_are_per_sample_and_do_not_touch_weights(b)


def test_shared_feature_check_rejects_a_wrong_classifier_head():
    b = create_backbone("test_vit_tiny")
    real = b.shared_features

    def off(names, classes, prompt):
        out = real(names, classes, prompt)
        return {**out, "fc_bias": out["fc_bias"] + 1.0} if "fc_bias" in out else out

    b.shared_features = off
    with pytest.raises(AssertionError):
        suite.check_shared_features_fit_the_per_sample_ones(b)


def test_layerwise_check_rejects_a_forward_that_skips_a_block():
    b = create_backbone("test_clip_tiny")
    real = b.forward_from

    def skipping(tower, hidden, layer, inputs):
        return real(tower, hidden, layer + 1 if layer == 1 else layer, inputs)

    b.forward_from = skipping
    with pytest.raises(AssertionError):
        suite.check_layerwise_api(b)
