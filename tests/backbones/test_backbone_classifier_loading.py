"""timm classifier checkpoints written here and loaded back through the real loader."""

import pytest
import torch
from safetensors.torch import save_file

from oodbench.backbones import create_backbone
from oodbench.errors import UserError


def _same(a, b, size):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    fa = a.compute_features(x, {"logits", "penultimate", "local_logits"})
    fb = b.compute_features(x, {"logits", "penultimate", "local_logits"})
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k


@pytest.mark.parametrize("name, size, suffix", [
    ("test_resnet_tiny", 64, ".pth"), ("test_swin_tiny", 64, ".safetensors"), ("test_vit_tiny", 32, ".pth"),
    ("test_vit_tiny", 32, ".safetensors"),
])
def test_state_dict_files(tmp_path, name, size, suffix):
    source = create_backbone(name, seed=1)
    path = tmp_path / f"w{suffix}"
    state = source.model.state_dict()
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = create_backbone(name, pretrained=str(path))
    assert loaded.pretrained == str(path)
    assert loaded.weights_hash() == source.weights_hash() != create_backbone(name).weights_hash()
    _same(loaded, source, size)


def test_timm_name_with_file_and_kwargs(tmp_path):
    source = create_backbone("test_resnet_tiny", seed=2)
    path = tmp_path / "r.bin"
    torch.save({"model": {f"module.{k}": v for k, v in source.model.state_dict().items()}}, path)
    loaded = create_backbone("timm:resnet50", pretrained=str(path), layers=[1, 1, 1, 1], num_classes=10,
                             data_config={"input_size": (3, 64, 64)})
    assert loaded.name == "timm:resnet50" and loaded.preprocess_config()["input_size"] == [3, 64, 64]
    _same(loaded, source, 64)


def test_architecture_filter_drops_original_buffers(tmp_path):
    """Original Swin-V2 checkpoints carry non-persistent buffers; timm's checkpoint_filter_fn removes them."""
    source = create_backbone("test_swin_tiny", seed=3)
    state = dict(source.model.state_dict())
    state["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
    state["layers.0.blocks.1.attn_mask"] = torch.zeros(16, 16, 16)
    torch.save(state, tmp_path / "orig.pth")
    _same(create_backbone("test_swin_tiny", pretrained=str(tmp_path / "orig.pth")), source, 64)


def test_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        create_backbone("test_resnet_tiny", pretrained=str(tmp_path / "missing.pth"))
    state = create_backbone("test_resnet_tiny").model.state_dict()
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, tmp_path / "nofc.pth")
    with pytest.raises(UserError, match=r"does not fit resnet50: 1 missing key\(s\) \(fc.bias\)"):
        create_backbone("test_resnet_tiny", pretrained=str(tmp_path / "nofc.pth"))
    torch.save({**state, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}, tmp_path / "in1k.pth")
    with pytest.raises(UserError, match=r"shape mismatch.*fc.weight is \(1000, 2048\) in the checkpoint, \(10, 2048\)"):
        create_backbone("test_resnet_tiny", pretrained=str(tmp_path / "in1k.pth"))
    (tmp_path / "x.onnx").write_bytes(b"0")
    with pytest.raises(UserError, match="unsupported checkpoint format"):
        create_backbone("test_resnet_tiny", pretrained=str(tmp_path / "x.onnx"))
    with pytest.raises(UserError, match="is a folder"):
        create_backbone("test_resnet_tiny", pretrained=str(tmp_path))
    with pytest.raises(UserError, match="unknown timm model 'resnet5000'"):
        create_backbone("timm:resnet5000", pretrained="random")
    with pytest.raises(UserError, match="neither a file nor a pretrained tag of resnet50.*tv_in1k"):
        create_backbone("resnet50", pretrained="nosuchtag")
    with pytest.raises(UserError, match="could not load pretrained weights for resnet50.tv_in1k"):  # offline
        create_backbone("resnet50")


def test_random_full_size_names_are_seeded():
    """pretrained='random' builds the architecture with the default tag's preprocessing, deterministically."""
    a = create_backbone("timm:resnet18.tv_in1k", pretrained="random")
    assert a.preprocess_config()["interpolation"] == "bilinear" and a.pretrained is None
    assert a.weights_hash() == create_backbone("timm:resnet18.tv_in1k", pretrained="none").weights_hash()
    assert a.weights_hash() != create_backbone("timm:resnet18.tv_in1k", pretrained="random", seed=5).weights_hash()
