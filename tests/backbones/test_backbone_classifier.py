"""timm classifier backbones: outputs, per-position logits against re-implementations, layer-wise API, targets."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oodbench.backbones import create_backbone
from oodbench.backbones.swin import swin_value_path
from oodbench.backbones.vit import vit_value_path
from oodbench.errors import IncompatibleError, UserError

from backbone_refs import swin_reference_local

SIZES = {"test_swin_tiny": 64, "test_vit_tiny": 32, "test_resnet_tiny": 64}


def _images(name, n=3, seed=0):
    s = SIZES[name]
    return torch.randn(n, 3, s, s, generator=torch.Generator().manual_seed(seed))


def _ln(x, m):
    return F.layer_norm(x, (x.shape[-1],), m.weight, m.bias, m.eps)


def _last_block_input(model, block, images):
    cap = {}
    h = block.register_forward_pre_hook(lambda m, args: cap.__setitem__("x", args[0]))
    with torch.no_grad():
        model(images)
    h.remove()
    return cap["x"]


@pytest.mark.parametrize("name", list(SIZES))
def test_logits_penultimate_and_fc(name):
    b = create_backbone(name)
    x = _images(name)
    out = b.compute_features(x, {"logits", "penultimate"})
    with torch.no_grad():
        ref = b.model(x)
    torch.testing.assert_close(out["logits"], ref, atol=1e-5, rtol=0)
    fc = b.shared_features({"fc_weight", "fc_bias"}, [], "")
    assert fc["fc_weight"].shape == (10, out["penultimate"].shape[1]) and fc["fc_bias"].shape == (10,)
    assert fc["fc_weight"].dtype == np.float32
    recon = out["penultimate"].numpy() @ fc["fc_weight"].T + fc["fc_bias"]
    np.testing.assert_allclose(recon, ref.numpy(), atol=1e-4)
    assert b.provides == {"logits", "penultimate", "local_logits", "fc_weight", "fc_bias"}
    with pytest.raises(IncompatibleError, match="image"):
        b.compute_features(x, {"image"})


def test_swin_local_logits_match_reference():
    b = create_backbone("test_swin_tiny")
    m = b.model
    x = _images("test_swin_tiny")
    ref = swin_reference_local(m, x)
    c = m.num_features
    out = b.compute_features(x, {"local_logits", "logits"})
    assert out["local_logits"].shape == (3, 4, 10)
    torch.testing.assert_close(out["local_logits"], ref.detach(), atol=1e-5, rtol=0)
    # not the same as the classifier applied to the real last-block tokens
    feats = b.feature_map(x)
    assert (m.head.fc(feats.reshape(3, -1, c)) - out["local_logits"]).abs().max() > 1e-3


def test_swin_window_partition_and_shift_are_identities_for_the_value_path():
    """A block whose attention is replaced by the value-only map equals swin_value_path, on a shifted block."""
    b = create_backbone("test_swin_tiny")
    blk = b.model.layers[0].blocks[1]
    assert any(blk.shift_size) and blk.window_size[0] < blk.input_resolution[0]
    a = blk.attn
    c = a.proj.in_features

    def value_only(x, mask=None):  # x: [nW*B, N, C] windows
        return a.proj(F.linear(x, a.qkv.weight[2 * c :], a.v_bias))

    x = torch.randn(2, *blk.input_resolution, c)
    a.forward = value_only
    try:
        with torch.no_grad():
            via_block = blk(x)
    finally:
        del a.forward
    with torch.no_grad():
        torch.testing.assert_close(swin_value_path(blk, x), via_block, atol=1e-5, rtol=0)


def test_vit_local_logits_match_reference():
    b = create_backbone("test_vit_tiny")
    m = b.model
    last = m.blocks[-1]
    x = _images("test_vit_tiny")
    xin = _last_block_input(m, last, x)  # [B, 1 + 16, C]
    d = xin.shape[-1]
    a = last.attn
    v = _ln(xin, last.norm1) @ a.qkv.weight[2 * d :].T + a.qkv.bias[2 * d :]
    x1 = xin + v @ a.proj.weight.T + a.proj.bias
    h = F.gelu(_ln(x1, last.norm2) @ last.mlp.fc1.weight.T + last.mlp.fc1.bias) @ last.mlp.fc2.weight.T + last.mlp.fc2.bias
    x2 = x1 + h
    ref = _ln(x2, m.norm)[:, 1:] @ m.head.weight.T + m.head.bias
    out = b.compute_features(x, {"local_logits"})
    assert out["local_logits"].shape == (3, 16, 10)
    torch.testing.assert_close(out["local_logits"], ref.detach(), atol=1e-5, rtol=0)
    # value-only attention inside the real block gives the same path
    with torch.no_grad():
        a.forward = lambda x, attn_mask=None, is_causal=False: a.proj(F.linear(x, a.qkv.weight[2 * d :], a.qkv.bias[2 * d :]))
        try:
            via_block = last(xin)
        finally:
            del a.forward
        torch.testing.assert_close(vit_value_path(last, xin), via_block, atol=1e-5, rtol=0)


def test_resnet_local_logits_are_the_fc_at_each_position():
    b = create_backbone("test_resnet_tiny")
    m = b.model
    x = _images("test_resnet_tiny")
    fmap = b.feature_map(x)  # [B, 2048, 2, 2]
    assert fmap.shape == (3, 2048, 2, 2)
    ref = torch.einsum("bchw,kc->bhwk", fmap, m.fc.weight).reshape(3, 4, 10) + m.fc.bias
    out = b.compute_features(x, {"local_logits", "logits"})
    torch.testing.assert_close(out["local_logits"], ref.detach(), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["local_logits"].mean(1), out["logits"], atol=1e-4, rtol=0)  # avg pool commutes


@pytest.mark.parametrize("name", list(SIZES))
def test_layerwise_api_at_the_ends(name):
    """Every layer is covered by the contract suite; here the block counts, the last index and the bounds."""
    b = create_backbone(name)
    x = _images(name, n=2)
    n = b.towers()["vision"]
    assert n == {"test_swin_tiny": 8, "test_vit_tiny": 2, "test_resnet_tiny": 4}[name]
    full = b.compute_features(x, {"logits", "local_logits"})
    with torch.no_grad():
        for layer in (n - 1, n):
            out = b.forward_from("vision", b.hidden("vision", x, layer), layer)
            torch.testing.assert_close(out.global_, full["logits"], atol=1e-5, rtol=0)
            torch.testing.assert_close(out.local, full["local_logits"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        b.hidden("vision", x, n + 1)
    with pytest.raises(UserError, match="tower"):
        b.hidden("text", x, 0)


def test_swin_hidden_states_include_downsampling():
    """hidden(l) is exactly what block l receives in timm's own forward (patch merging included)."""
    b = create_backbone("test_swin_tiny")
    caps = []
    blocks = [blk for stage in b.model.layers for blk in stage.blocks]
    hs = [blk.register_forward_pre_hook(lambda m, args: caps.append(args[0])) for blk in blocks]
    x = _images("test_swin_tiny")
    with torch.no_grad():
        b.model(x)
        for h in hs:
            h.remove()
        for layer in range(8):
            torch.testing.assert_close(b.hidden("vision", x, layer), caps[layer], atol=1e-6, rtol=0)
    assert [tuple(c.shape[1:]) for c in caps[::2]] == [(16, 16, 32), (8, 8, 64), (4, 4, 128), (2, 2, 256)]


# ------------------------------------------------------------------------------------------ target weights
def test_swin_targets():
    b = create_backbone("test_swin_tiny")
    ups = b.target_modules("W_up")
    assert [t.name for t in ups] == [f"layers.{s}.blocks.{i}.mlp.fc1.weight" for s in range(4) for i in range(2)]
    assert [t.layer for t in ups] == list(range(8))
    assert [t.shape for t in ups[::2]] == [(128, 32), (256, 64), (512, 128), (1024, 256)]
    assert [t.shape for t in b.target_modules("W_down")[::2]] == [(32, 128), (64, 256), (128, 512), (256, 1024)]
    assert b.target_modules("W_o")[0].name == "layers.0.blocks.0.attn.proj.weight"
    with pytest.raises(IncompatibleError, match="W_p"):
        b.target_modules("W_p")


@pytest.mark.parametrize("name", ["test_swin_tiny", "test_vit_tiny"])
@pytest.mark.parametrize("i, weight_type", [(0, "W_q"), (1, "W_k"), (2, "W_v")])
def test_qkv_slices(name, i, weight_type):
    b = create_backbone(name)
    t = b.target_modules(weight_type)[-1]
    packed = dict(b.model.named_parameters())[t.name]
    assert t.name.endswith("attn.qkv.weight")
    d = packed.shape[1]
    before = packed.detach().clone()
    torch.testing.assert_close(t.get(), before[i * d : (i + 1) * d], atol=0, rtol=0)
    new = torch.randn(d, d)
    t.set(new)
    torch.testing.assert_close(packed.detach()[i * d : (i + 1) * d], new, atol=0, rtol=0)
    rest = [r for r in range(3 * d) if not i * d <= r < (i + 1) * d]
    torch.testing.assert_close(packed.detach()[rest], before[rest], atol=0, rtol=0)


def test_v_slice_drives_the_local_logits():
    b = create_backbone("test_swin_tiny")
    x = _images("test_swin_tiny")
    before = b.compute_features(x, {"local_logits"})["local_logits"]
    q = b.target_modules("W_q")[-1]
    q.set(torch.zeros(q.shape))  # no query in the value path
    torch.testing.assert_close(b.compute_features(x, {"local_logits"})["local_logits"], before, atol=1e-6, rtol=0)
    v = b.target_modules("W_v")[-1]
    v.set(torch.zeros(v.shape))
    assert (b.compute_features(x, {"local_logits"})["local_logits"] - before).abs().max() > 1e-4


def test_resnet_conv_targets():
    b = create_backbone("test_resnet_tiny")
    ups, downs = b.target_modules("W_up"), b.target_modules("W_down")
    assert [t.name for t in ups] == [f"layer{s}.0.conv3.weight" for s in range(1, 5)]
    assert [t.name for t in downs] == [f"layer{s}.0.conv1.weight" for s in range(1, 5)]
    assert [t.shape for t in ups] == [(256, 64), (512, 128), (1024, 256), (2048, 512)]
    assert [t.shape for t in downs] == [(64, 64), (128, 256), (256, 512), (512, 1024)]
    assert ups[0].kernel_shape == (256, 64, 1, 1)
    conv = b.model.layer2[0].conv3.weight
    new = torch.randn(512, 128)
    ups[1].set(new)
    torch.testing.assert_close(conv.detach(), new.reshape(512, 128, 1, 1), atol=0, rtol=0)
    for wt in ("W_q", "W_o", "W_p"):
        with pytest.raises(IncompatibleError, match="supported: W_up, W_down"):
            b.target_modules(wt)
    assert b.weight_types() == ("W_up", "W_down")


@pytest.mark.parametrize("name", list(SIZES))
def test_target_round_trip_is_exact(name):
    b = create_backbone(name)
    x = _images(name)
    before = b.compute_features(x, {"logits", "local_logits"})
    state = {k: v.clone() for k, v in b.model.state_dict().items()}
    for wt in b.weight_types():
        for t in b.target_modules(wt):
            w = t.get().clone()
            t.set(w)
            assert torch.equal(t.get(), w)
    for k, v in b.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    after = b.compute_features(x, {"logits", "local_logits"})
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_conv_kernel_of_3x3_reshapes(tmp_path):
    """kernel_shape handling for a k x k kernel: [out, in*k*k] view and back."""
    from oodbench.backbones.base import TargetWeight

    b = create_backbone("test_resnet_tiny")
    w = b.model.layer1[0].conv2.weight  # [64, 64, 3, 3]
    t = TargetWeight("vision", "W_up", 0, "layer1.0.conv2.weight", w, kernel_shape=tuple(w.shape))
    assert t.shape == (64, 576)
    torch.testing.assert_close(t.get()[5, 9 * 3 : 9 * 4].reshape(3, 3), w.detach()[5, 3], atol=0, rtol=0)
    new = torch.randn(64, 576)
    t.set(new)
    torch.testing.assert_close(w.detach(), new.reshape(64, 64, 3, 3), atol=0, rtol=0)


# ---------------------------------------------------------------------------------------- preprocessing
def test_preprocess_from_timm_config():
    from PIL import Image
    from torchvision import transforms as T

    b = create_backbone("test_swin_tiny")
    cfg = b.preprocess_config()
    assert cfg == {"input_size": [3, 64, 64], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
                   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    ref = T.Compose([T.Resize(int(64 / 0.9), T.InterpolationMode.BICUBIC), T.CenterCrop(64), T.ToTensor(),
                     T.Normalize(cfg["mean"], cfg["std"])])(img)
    torch.testing.assert_close(b.preprocess()(img), ref)


def test_generic_timm_model():
    b = create_backbone("timm:resnet18", pretrained="random", num_classes=7)
    assert b.provides == {"logits", "penultimate", "fc_weight", "fc_bias"}
    x = torch.randn(2, 3, 64, 64)
    out = b.compute_features(x, {"logits", "penultimate"})
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], b.model(x), atol=1e-5, rtol=0)
    assert b.describe()["architecture"] == "generic" and b.name == "timm:resnet18"
    with pytest.raises(IncompatibleError, match="no block-wise adapter"):
        b.hidden("vision", x, 0)
    with pytest.raises(IncompatibleError, match="no W_up"):
        b.target_modules("W_up")
