"""Full-size architectures with seeded random weights: ViT-B/16, ViT-L/14, Swin-V2-B, ResNet-50 (slow)."""

import json

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from oodbench.backbones import create_backbone
from oodbench.backbones.hf_clip import hf_config_from_open_clip, open_clip_to_hf_state_dict

from backbone_refs import clip_outputs, clip_reference_local, hf_clip_reference, swin_reference_local

pytestmark = pytest.mark.slow

PROMPTS = ["a photo of a goldfish", "a photo of a kite (bird of prey)", "a photo of a tv"]


def _clip_outputs(b, images):
    return clip_outputs(b, images, PROMPTS)


@pytest.mark.parametrize("name, arch, size, grid, layers", [
    ("clip_vit_b16", "ViT-B-16-quickgelu", 224, 14, (12, 12)),
    ("clip_vit_l14", "ViT-L-14-quickgelu", 224, 16, (24, 12)),
])
def test_clip_full_size_formats_and_parity(tmp_path, name, arch, size, grid, layers):
    from transformers import CLIPConfig, CLIPModel

    b = create_backbone(name, pretrained="random")
    assert b.towers() == {"vision": layers[0], "text": layers[1]}
    assert type(b.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    ref = _clip_outputs(b, x)
    assert ref["local"].shape == (2, grid * grid, b.embed_dim)
    torch.testing.assert_close(ref["local"], clip_reference_local(b.model, x), atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(ref["text"], b.model.encode_text(b.tokenize(PROMPTS)), atol=1e-5, rtol=0)  # trimmed

    # HF format: transformers' CLIPModel with the converted weights is the independent reference
    hf = CLIPModel(CLIPConfig(**hf_config_from_open_clip(b.model))).eval()
    hf.load_state_dict(open_clip_to_hf_state_dict(b.model.state_dict()), strict=True)
    hf_ref = hf_clip_reference(hf, x, b.tokenize(PROMPTS))
    for k in ("image", "local", "text"):
        torch.testing.assert_close(ref[k], hf_ref[k], atol=1e-5, rtol=0)
    hf.save_pretrained(tmp_path / "hf")
    del hf
    for loaded in (create_backbone(f"local-dir:{tmp_path / 'hf'}"), create_backbone(name, pretrained=str(tmp_path / "hf"))):
        out = _clip_outputs(loaded, x)
        for k in ("image", "local", "text"):
            torch.testing.assert_close(out[k], ref[k], atol=1e-5, rtol=0)
        del loaded

    # open_clip state dict file and local-dir folder
    d = tmp_path / "oc"
    d.mkdir()
    save_file(b.model.state_dict(), str(d / "open_clip_model.safetensors"))
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.get_model_config(arch)}))
    for loaded in (create_backbone(name, pretrained=str(d / "open_clip_model.safetensors")), create_backbone(f"local-dir:{d}")):
        assert loaded.weights_hash() == b.weights_hash()
        out = _clip_outputs(loaded, x)
        for k in ("image", "local", "text"):
            torch.testing.assert_close(out[k], ref[k], atol=0, rtol=0)
        del loaded


def test_clip_b16_targets_and_preprocess():
    b = create_backbone("clip_vit_b16", pretrained="random")
    ups = b.target_modules("W_up")
    assert len(ups) == 24 and ups[0].shape == (3072, 768) and ups[12].shape == (2048, 512)
    assert ups[11].name == "visual.transformer.resblocks.11.mlp.c_fc.weight"
    assert [t.shape for t in b.target_modules("W_p")] == [(512, 768), (512, 512)]
    assert b.target_modules("W_v", "vision")[3].rows == slice(1536, 2304)
    assert b.preprocess_config()["resize"] == 224 and b.preprocess_config()["interpolation"] == "bicubic"
    assert b.logit_scale() == pytest.approx(1 / 0.07, rel=1e-5)


def _randomise_post_norms(model):
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for stage in model.layers:
            for blk in stage.blocks:
                for norm in (blk.norm1, blk.norm2):
                    norm.weight.copy_(1 + 0.2 * torch.randn(norm.weight.shape, generator=g))
                    norm.bias.copy_(0.1 * torch.randn(norm.bias.shape, generator=g))


def test_swinv2_b(tmp_path):
    b = create_backbone("swinv2_b", pretrained="random")
    _randomise_post_norms(b.model)  # timm's init zeroes them (identity blocks)
    ups = b.target_modules("W_up")
    assert len(ups) == 24 == b.towers()["vision"]
    assert [ups[i].shape for i in (0, 2, 4, 22)] == [(512, 128), (1024, 256), (2048, 512), (4096, 1024)]
    assert ups[23].name == "layers.3.blocks.1.mlp.fc1.weight"
    resize = b.preprocess().transforms[0]
    assert resize.size == 284 and b.preprocess_config()["input_size"] == [3, 256, 256]  # floor(256 / 0.9)
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    out = b.compute_features(x, {"logits", "local_logits", "penultimate"})
    assert out["local_logits"].shape == (2, 64, 1000) and out["penultimate"].shape == (2, 1024)
    torch.testing.assert_close(out["local_logits"], swin_reference_local(b.model, x), atol=1e-4, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], b.model(x), atol=1e-5, rtol=0)
        for layer in (0, 4, 23, 24):
            o = b.forward_from("vision", b.hidden("vision", x, layer), layer)
            torch.testing.assert_close(o.global_, out["logits"], atol=1e-4, rtol=0)
            torch.testing.assert_close(o.local, out["local_logits"], atol=1e-4, rtol=0)
    save_file(b.model.state_dict(), str(tmp_path / "swin.safetensors"))
    loaded = create_backbone("swinv2_b", pretrained=str(tmp_path / "swin.safetensors"))
    assert loaded.weights_hash() == state_hash(b)
    assert torch.equal(loaded.compute_features(x, {"local_logits"})["local_logits"], out["local_logits"])


def state_hash(b):
    from oodbench.backbones.base import state_dict_hash

    return state_dict_hash(b.model.state_dict())


def test_resnet50(tmp_path):
    b = create_backbone("resnet50", pretrained="random")
    assert b.towers() == {"vision": 16}
    assert b.preprocess_config()["interpolation"] == "bilinear" and b.preprocess_config()["crop_pct"] == 0.875
    assert b.preprocess().transforms[0].size == 256
    ups, downs = b.target_modules("W_up"), b.target_modules("W_down")
    assert len(ups) == len(downs) == 16 and ups[15].shape == (2048, 512) and downs[15].shape == (512, 2048)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    out = b.compute_features(x, {"logits", "local_logits", "penultimate"})
    assert out["local_logits"].shape == (2, 49, 1000) and out["penultimate"].shape == (2, 2048)
    fmap = b.feature_map(x)
    ref = torch.einsum("bchw,kc->bhwk", fmap, b.model.fc.weight).reshape(2, 49, 1000) + b.model.fc.bias
    torch.testing.assert_close(out["local_logits"], ref.detach(), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["local_logits"].mean(1), out["logits"], atol=1e-4, rtol=0)
    torch.save(b.model.state_dict(), tmp_path / "r50.pth")
    loaded = create_backbone("resnet50", pretrained=str(tmp_path / "r50.pth"))
    assert loaded.weights_hash() == b.weights_hash()
    assert torch.equal(loaded.compute_features(x, {"logits"})["logits"], out["logits"])
