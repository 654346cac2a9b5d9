"""Hugging Face ``Swinv2ForImageClassification`` weights load into the timm Swin-V2 backbone with equal logits.

The reference is transformers' own model: a tiny one with the shape of ``test_swin_tiny`` (and, under ``slow``, the
full-size ``microsoft/swinv2-base-patch4-window16-256`` config of SeTAR), with seeded random weights, run on the same
tensor (no preprocessing on either side).
"""

import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from transformers import Swinv2Config, Swinv2ForImageClassification

from oodbench.backbones import create_backbone
from oodbench.backbones.classifier_models import TEST_SWIN_TINY_KWARGS
from oodbench.backbones.hf_swinv2 import HF_TO_TIMM, hf_swinv2_to_timm_state_dict, is_hf_swinv2_state_dict
from oodbench.errors import UserError

TINY = dict(
    image_size=64, patch_size=4, embed_dim=TEST_SWIN_TINY_KWARGS["embed_dim"], depths=list(TEST_SWIN_TINY_KWARGS["depths"]),
    num_heads=list(TEST_SWIN_TINY_KWARGS["num_heads"]), window_size=TEST_SWIN_TINY_KWARGS["window_size"],
    num_labels=TEST_SWIN_TINY_KWARGS["num_classes"],
)
#: config.json of microsoft/swinv2-base-patch4-window16-256 (the architecture fields).
SWINV2_B = dict(image_size=256, patch_size=4, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                window_size=16, pretrained_window_sizes=[0, 0, 0, 0], num_labels=1000)


def _hf_model(config: dict, seed: int = 0) -> Swinv2ForImageClassification:
    """Seeded random weights, every parameter perturbed (LayerNorms away from 1/0, so that none is an identity)."""
    torch.manual_seed(seed)
    model = Swinv2ForImageClassification(Swinv2Config(**config)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.05 if name.endswith("logit_scale") else 0.2 if "norm" in name else 0.05
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def _inputs(size: int, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def hf_tiny():
    return _hf_model(TINY)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_hf_state_dict_file_gives_equal_logits(tmp_path, hf_tiny, fmt):
    state = {k: v.contiguous() for k, v in hf_tiny.state_dict().items()}
    path = tmp_path / f"model.{fmt}"
    save_file(state, str(path)) if fmt == "safetensors" else torch.save(state, path)
    b = create_backbone("test_swin_tiny", pretrained=str(path))
    x = _inputs(64)
    with torch.no_grad():
        ref = hf_tiny(pixel_values=x).logits
        ours = b.compute_features(x, {"logits"})["logits"]
    assert ref.abs().max() > 0.1 and ref.std(0).mean() > 1e-3  # not a degenerate network
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert b.pretrained == str(path)


def test_hf_model_folder_with_config(tmp_path, hf_tiny):
    hf_tiny.save_pretrained(tmp_path / "ft")
    b = create_backbone("test_swin_tiny", pretrained=str(tmp_path / "ft"))
    x = _inputs(64)
    with torch.no_grad():
        torch.testing.assert_close(b.compute_features(x, {"logits"})["logits"], hf_tiny(pixel_values=x).logits,
                                   atol=1e-5, rtol=0)


def test_folder_config_of_another_window_is_refused(tmp_path, hf_tiny):
    """Same shapes, different window: state dicts alone cannot tell, the folder's config.json can."""
    hf_tiny.save_pretrained(tmp_path / "ft")
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    cfg["window_size"] = 2
    (tmp_path / "ft" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=r"windows \(2, 2, 2, 2\) \(config\) vs \(4, 4, 4, 2\) \(model\)") as info:
        create_backbone("test_swin_tiny", pretrained=str(tmp_path / "ft"))
    assert "\n" not in str(info.value)


def test_key_mapping_by_hand(hf_tiny):
    """Independent spot checks of the mapping: packed q/k/v, biases, stage-shifted merging, head."""
    hf = hf_tiny.state_dict()
    assert is_hf_swinv2_state_dict(hf)
    out = hf_swinv2_to_timm_state_dict(hf)
    blk = "swinv2.encoder.layers.1.blocks.1.attention.self."
    qkv = out["layers.1.blocks.1.attn.qkv.weight"]
    d = hf[blk + "query.weight"].shape[0]
    assert torch.equal(qkv[:d], hf[blk + "query.weight"]) and torch.equal(qkv[d:2 * d], hf[blk + "key.weight"])
    assert torch.equal(qkv[2 * d:], hf[blk + "value.weight"])
    assert torch.equal(out["layers.1.blocks.1.attn.q_bias"], hf[blk + "query.bias"])
    assert torch.equal(out["layers.1.blocks.1.attn.v_bias"], hf[blk + "value.bias"])
    assert torch.equal(out["layers.2.downsample.reduction.weight"], hf["swinv2.encoder.layers.1.downsample.reduction.weight"])
    assert torch.equal(out["head.fc.weight"], hf["classifier.weight"])
    assert "layers.0.downsample.reduction.weight" not in out
    own = create_backbone("test_swin_tiny").model.state_dict()
    assert set(out) == set(own)


def test_old_transformers_buffers_are_dropped_and_unknown_keys_refused(tmp_path, hf_tiny):
    state = dict(hf_tiny.state_dict())
    state["swinv2.encoder.layers.0.blocks.0.attention.self.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
    path = tmp_path / "old.bin"
    torch.save(state, path)
    create_backbone("test_swin_tiny", pretrained=str(path))  # loads
    state["swinv2.encoder.layers.0.blocks.0.attention.self.key.bias"] = torch.zeros(32)
    torch.save(state, path)
    with pytest.raises(UserError, match="bias on the key projection"):
        create_backbone("test_swin_tiny", pretrained=str(path))


def test_hub_names_map_to_timm_architectures():
    assert HF_TO_TIMM["microsoft/swinv2-base-patch4-window16-256"] == "swinv2_base_window16_256"
    assert all(timm.is_model(name) for name in HF_TO_TIMM.values())


@pytest.mark.slow
def test_full_size_swinv2_b_from_hf_weights(tmp_path):
    """SeTAR's HF Swin-V2-B layout (window 16, 256 px, 1000 classes) into the registered swinv2_b."""
    hf = _hf_model(SWINV2_B, seed=3)
    hf.save_pretrained(tmp_path / "swinv2-b")
    b = create_backbone("swinv2_b", pretrained=str(tmp_path / "swinv2-b"))
    assert b.family == "swinv2-b"
    x = _inputs(256, n=2)
    with torch.no_grad():
        torch.testing.assert_close(b.compute_features(x, {"logits"})["logits"], hf(pixel_values=x).logits,
                                   atol=1e-5, rtol=0)
