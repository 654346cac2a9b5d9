"""Backbone families come from exact architecture lookups (names, dimensions), never from name substrings."""

import open_clip
import pytest
import torch

from oodbench.backbones import create_backbone
from oodbench.backbones.families import clip_family, clip_signature, config_signature, open_clip_family, timm_family
from oodbench.backbones.hf_clip import open_clip_cfg_from_hf_config

#: The published transformers configs of openai/clip-vit-base-patch16 and -large-patch14 (dimensions only).
HF_B16 = {
    "model_type": "clip", "projection_dim": 512,
    "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 12},
    "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
                      "image_size": 224, "patch_size": 16},
}
HF_L14 = {
    "model_type": "clip", "projection_dim": 768,
    "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
    "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                      "image_size": 224, "patch_size": 14},
}


@pytest.mark.parametrize("name, family", [
    ("ViT-B-16", "clip-b16"), ("ViT-B-16-quickgelu", "clip-b16"), ("ViT-L-14", "clip-l14"),
    ("ViT-L-14-quickgelu", "clip-l14"), ("ViT-L-14-336", None), ("ViT-L-14-336-quickgelu", None),
    ("ViT-B-32", None), ("ViT-B-16-plus", None), ("ViT-B-16-SigLIP", None), ("vit-b-16", None),
])
def test_open_clip_names(name, family):
    assert open_clip_family(name) == family


@pytest.mark.parametrize("name, kwargs, family", [
    ("swinv2_base_window16_256", {}, "swinv2-b"),
    ("swinv2_base_window16_256.ms_in1k", {}, "swinv2-b"),
    ("swinv2_base_window16_256", {"num_classes": 10}, "swinv2-b"),
    ("swinv2_base_window16_256", {"window_size": 4}, None),
    ("swinv2_base_window12to16_192to256", {}, None),
    ("swinv2_small_window16_256", {}, None),
    ("resnet50", {}, "resnet50"),
    ("resnet50.tv_in1k", {}, "resnet50"),
    ("resnet50d", {}, None),
    ("resnet50", {"layers": [1, 1, 1, 1]}, None),
    ("vit_base_patch16_224", {}, None),
])
def test_timm_names(name, kwargs, family):
    assert timm_family(name, kwargs) == family


def test_declared_timm_family_is_dropped_when_the_architecture_changes():
    assert timm_family("resnet50", {}, "resnet50") == "resnet50"
    assert timm_family("resnet50", {"layers": [1, 1, 1, 1]}, "resnet50") is None


def test_hf_configs_by_dimensions():
    assert config_signature(open_clip_cfg_from_hf_config(HF_B16)) == config_signature(open_clip.get_model_config("ViT-B-16"))
    assert config_signature(open_clip_cfg_from_hf_config(HF_L14)) == config_signature(open_clip.get_model_config("ViT-L-14"))
    deeper = {**HF_B16, "vision_config": {**HF_B16["vision_config"], "num_hidden_layers": 11}}
    assert config_signature(open_clip_cfg_from_hf_config(deeper)) != config_signature(open_clip.get_model_config("ViT-B-16"))


def test_clip_model_by_dimensions():
    """A model built from the HF B/16 config is clip-b16; its signature equals the one read off its config."""
    cfg = open_clip_cfg_from_hf_config(HF_B16)
    with torch.device("meta"):
        model = open_clip.CLIP(**cfg)
    assert clip_signature(model) == config_signature(cfg)
    assert clip_family(model) == "clip-b16"
    assert clip_family(create_backbone("test_clip_tiny").model) is None
    cfg_p8 = {**cfg, "vision_cfg": {**cfg["vision_cfg"], "patch_size": 8, "image_size": 112}}
    with torch.device("meta"):
        assert clip_family(open_clip.CLIP(**cfg_p8)) is None


def test_built_backbones_record_their_family():
    assert create_backbone("timm:resnet50", pretrained="random").family == "resnet50"
    b = create_backbone("timm:resnet50", pretrained="random", layers=[1, 1, 1, 1])
    assert b.family is None and b.describe()["family"] is None
    assert create_backbone("test_clip_tiny").family is None


def test_generic_timm_model_declares_no_layerwise_api():
    b = create_backbone("timm:convnext_atto", pretrained="random")
    assert b.capabilities == frozenset() and b.family is None
