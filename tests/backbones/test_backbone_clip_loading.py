"""CLIP checkpoints in every supported format, written here and loaded back through the real loaders."""

import json

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import save_file

from oodbench.backbones import create_backbone
from oodbench.backbones.clip_models import TEST_CLIP_TINY_CFG
from oodbench.backbones.hf_clip import (
    hf_config_from_open_clip,
    hf_to_open_clip_state_dict,
    open_clip_cfg_from_hf_config,
    open_clip_to_hf_state_dict,
)
from oodbench.errors import UserError
from oodbench.registry import RegistryError

from backbone_refs import clip_outputs
from backbone_refs import hf_clip_reference as _hf_reference

PROMPTS = ["a photo of a cat", "a dog", "x y z"]


def _outputs(b, images):
    return clip_outputs(b, images, PROMPTS)


def _assert_same(a, b, atol=0.0):
    for k in ("image", "local", "text"):
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0)


@pytest.fixture
def source():
    """A seed-1 tiny CLIP: loading its weights into test_clip_tiny (seed 0) must reproduce it."""
    return create_backbone("test_clip_tiny", seed=1)


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".pth", ".safetensors"])
def test_open_clip_state_dict_files(tmp_path, source, clip_images, suffix):
    path = tmp_path / f"weights{suffix}"
    state = source.model.state_dict()
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = create_backbone("test_clip_tiny", pretrained=str(path))
    assert loaded.pretrained == str(path)
    assert loaded.weights_hash() == source.weights_hash() != create_backbone("test_clip_tiny").weights_hash()
    _assert_same(_outputs(loaded, clip_images), _outputs(source, clip_images))


def test_nested_and_data_parallel_state_dicts(tmp_path, source, clip_images):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.model.state_dict().items()}}, path)
    _assert_same(_outputs(create_backbone("test_clip_tiny", pretrained=str(path)), clip_images), _outputs(source, clip_images))


def test_open_clip_local_dir(tmp_path, source, clip_images):
    d = tmp_path / "tiny"
    d.mkdir()
    cfg = {"model_cfg": TEST_CLIP_TINY_CFG, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file(source.model.state_dict(), str(d / "open_clip_model.safetensors"))
    loaded = create_backbone(f"local-dir:{d}")
    assert loaded.name == f"local-dir:{d}"
    assert loaded.preprocess_config()["mean"] == [0.5, 0.5, 0.5]
    assert loaded.tokenize(["a"]).shape == (1, 16)
    _assert_same(_outputs(loaded, clip_images), _outputs(source, clip_images))
    # the same folder as the weights of a named architecture
    _assert_same(_outputs(create_backbone("test_clip_tiny", pretrained=str(d)), clip_images), _outputs(source, clip_images))


def test_open_clip_name_with_file(tmp_path, source, clip_images):
    """`open_clip:<name>` + a weights file goes through open_clip's own config of that name."""
    open_clip.factory._MODEL_CONFIGS["oodbench-test-tiny"] = TEST_CLIP_TINY_CFG
    try:
        path = tmp_path / "w.safetensors"
        save_file(source.model.state_dict(), str(path))
        loaded = create_backbone("open_clip:oodbench-test-tiny", pretrained=str(path))
        assert loaded.name == "open_clip:oodbench-test-tiny"
        _assert_same(_outputs(loaded, clip_images), _outputs(source, clip_images))
        rand = create_backbone("open_clip:oodbench-test-tiny", pretrained="random", seed=1)
        assert rand.weights_hash() == source.weights_hash()
    finally:
        del open_clip.factory._MODEL_CONFIGS["oodbench-test-tiny"]


# ------------------------------------------------------------------------------------------ Hugging Face
def _hf_tiny(seed=0):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    cfg = CLIPConfig(
        projection_dim=32,
        text_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=49408, max_position_embeddings=16, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
    )
    return CLIPModel(cfg).eval()


def test_hf_folder_loads_and_matches_transformers(tmp_path, clip_images):
    hf = _hf_tiny()
    hf.save_pretrained(tmp_path / "hf")
    b = create_backbone(f"local-dir:{tmp_path / 'hf'}")
    ids = b.tokenize(PROMPTS)
    ref = _hf_reference(hf, clip_images, ids)
    _assert_same(_outputs(b, clip_images), ref, atol=1e-5)
    assert b.logit_scale() == pytest.approx(float(hf.logit_scale.detach().exp()), rel=1e-6)
    # the same weights into a named architecture, and the bare weights file
    for source in (tmp_path / "hf", tmp_path / "hf" / "model.safetensors"):
        _assert_same(_outputs(create_backbone("test_clip_tiny", pretrained=str(source)), clip_images), ref, atol=1e-5)


def test_hf_folder_with_pytorch_bin_and_preprocessor(tmp_path, clip_images):
    hf = _hf_tiny(seed=3)
    d = tmp_path / "hfbin"
    hf.save_pretrained(d, safe_serialization=False) if _accepts_safe(hf) else None
    if not (d / "pytorch_model.bin").exists():  # transformers 5 always writes safetensors: convert by hand
        d.mkdir(exist_ok=True)
        torch.save(hf.state_dict(), d / "pytorch_model.bin")
        (d / "config.json").write_text(hf.config.to_json_string())
        for f in d.glob("*.safetensors"):
            f.unlink()
    (d / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.1, 0.2, 0.3], "image_std": [1, 1, 1], "resample": 2}))
    b = create_backbone(f"local-dir:{d}")
    assert b.preprocess_config()["interpolation"] == "bilinear" and b.preprocess_config()["mean"] == [0.1, 0.2, 0.3]
    _assert_same(_outputs(b, clip_images), _hf_reference(hf, clip_images, b.tokenize(PROMPTS)), atol=1e-5)


def _accepts_safe(hf):
    import inspect

    return "safe_serialization" in inspect.signature(hf.save_pretrained).parameters


def test_open_clip_weights_drive_transformers(clip_images):
    """open_clip -> HF mapping: an HF CLIPModel loaded (strict) with converted weights gives the same features."""
    from transformers import CLIPConfig, CLIPModel

    b = create_backbone("test_clip_tiny", seed=2)
    hf = CLIPModel(CLIPConfig(**hf_config_from_open_clip(b.model))).eval()
    result = hf.load_state_dict(open_clip_to_hf_state_dict(b.model.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    _assert_same(_outputs(b, clip_images), _hf_reference(hf, clip_images, b.tokenize(PROMPTS)), atol=1e-5)


def test_key_mapping_round_trip():
    state = create_backbone("test_clip_tiny").model.state_dict()
    back = hf_to_open_clip_state_dict(open_clip_to_hf_state_dict(state))
    assert set(back) == set(state)
    for k in state:
        assert torch.equal(back[k], state[k]), k
    cfg = open_clip_cfg_from_hf_config(hf_config_from_open_clip(open_clip.CLIP(**TEST_CLIP_TINY_CFG)))
    assert cfg["vision_cfg"] == {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 4.0}
    assert cfg["text_cfg"] == {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 4.0}
    assert cfg["embed_dim"] == 32 and cfg["quick_gelu"] is True


# ------------------------------------------------------------------------------------------------ errors
def test_missing_file_and_wrong_format(tmp_path):
    with pytest.raises(UserError, match="not found"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "nope.pt"))
    (tmp_path / "w.txt").write_text("hello")
    with pytest.raises(UserError, match="unsupported checkpoint format"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "w.txt"))
    (tmp_path / "bad.pt").write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(UserError, match="bad.pt: not a PyTorch checkpoint"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "bad.pt"))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UserError, match="state dict"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "list.pt"))


def test_key_and_shape_mismatch(tmp_path):
    state = create_backbone("test_clip_tiny").model.state_dict()
    missing = {k: v for k, v in state.items() if k != "visual.proj"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(UserError, match=r"does not fit test_clip_tiny: 1 missing key\(s\) \(visual.proj\)"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "missing.pt"))
    wide = {**state, "visual.proj": torch.zeros(64, 48)}
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(UserError, match=r"shape mismatch.*visual.proj is \(64, 48\) in the checkpoint, \(64, 32\)"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "wide.pt"))
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(UserError, match="unexpected key"):
        create_backbone("test_clip_tiny", pretrained=str(tmp_path / "extra.pt"))


def test_bad_folders(tmp_path):
    with pytest.raises(UserError, match="not found"):
        create_backbone(f"local-dir:{tmp_path / 'none'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither open_clip_config.json"):
        create_backbone(f"local-dir:{tmp_path / 'empty'}")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps(hf_config_from_open_clip(open_clip.CLIP(**TEST_CLIP_TINY_CFG))))
    with pytest.raises(UserError, match="no model.safetensors or pytorch_model.bin"):
        create_backbone(f"local-dir:{tmp_path / 'hf'}")
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(UserError, match="not a usable CLIP config"):
        create_backbone(f"local-dir:{tmp_path / 'vit'}")


def test_names_and_tags():
    with pytest.raises(UserError, match="unknown open_clip model 'ViT-B-61'"):
        create_backbone("open_clip:ViT-B-61", pretrained="random")
    with pytest.raises(UserError, match="neither a file nor a pretrained tag.*openai"):
        create_backbone("open_clip:ViT-B-16-quickgelu", pretrained="nosuchtag")
    with pytest.raises(UserError, match="could not load weights 'openai'"):  # offline in the tests
        create_backbone("clip_vit_b16")
    with pytest.raises(RegistryError, match="known:.*test_clip_tiny"):
        create_backbone("no_such_backbone")
    with pytest.raises(UserError, match="unknown CLIP backbone option"):
        create_backbone("test_clip_tiny", colour="red")


def test_openai_tag_forces_quick_gelu(monkeypatch):
    """OpenAI weights were trained with QuickGELU: `open_clip:ViT-B-16` + `openai` must build the QuickGELU model."""
    seen = {}

    def fake_create_model(name, pretrained=None, force_quick_gelu=False, **kw):
        seen.update(name=name, pretrained=pretrained, force_quick_gelu=force_quick_gelu)
        raise RuntimeError("offline")

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    with pytest.raises(UserError, match="could not load weights 'openai' for ViT-B-16"):
        create_backbone("open_clip:ViT-B-16", pretrained="openai")
    assert seen == {"name": "ViT-B-16", "pretrained": "openai", "force_quick_gelu": True}
    with pytest.raises(UserError):
        create_backbone("open_clip:ViT-B-16", pretrained="laion400m_e32")
    assert seen["force_quick_gelu"] is False


def test_tiny_weights_hash_is_stable_across_machines():
    """Seeded CPU init: the weights hash (part of every cache key) is a constant for the pinned torch version."""
    assert create_backbone("test_clip_tiny").weights_hash() == "cea83c61408fad76"
