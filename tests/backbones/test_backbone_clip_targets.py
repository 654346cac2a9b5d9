"""CLIP target_modules: names, shapes, ordering, and exact get/set round trips on the right slices."""

import pytest
import torch

from oodbench.backbones.base import WEIGHT_TYPES
from oodbench.errors import UserError

EXPECTED = {
    "W_q": ("attn.in_proj_weight", (64, 64)),
    "W_k": ("attn.in_proj_weight", (64, 64)),
    "W_v": ("attn.in_proj_weight", (64, 64)),
    "W_o": ("attn.out_proj.weight", (64, 64)),
    "W_up": ("mlp.c_fc.weight", (256, 64)),
    "W_down": ("mlp.c_proj.weight", (64, 256)),
}


@pytest.mark.parametrize("weight_type", list(EXPECTED))
def test_block_targets(tiny_clip, weight_type):
    suffix, shape = EXPECTED[weight_type]
    targets = tiny_clip.target_modules(weight_type)
    assert [(t.tower, t.layer) for t in targets] == [("vision", 0), ("vision", 1), ("text", 0), ("text", 1)]
    assert [t.name for t in targets] == [
        f"visual.transformer.resblocks.0.{suffix}",
        f"visual.transformer.resblocks.1.{suffix}",
        f"transformer.resblocks.0.{suffix}",
        f"transformer.resblocks.1.{suffix}",
    ]
    params = dict(tiny_clip.model.named_parameters())
    for t in targets:
        assert t.weight_type == weight_type and t.shape == shape
        assert t.param is params[t.name]
    assert [t.layer for t in tiny_clip.target_modules(weight_type, "text")] == [0, 1]


@pytest.mark.parametrize("i, weight_type", [(0, "W_q"), (1, "W_k"), (2, "W_v")])
def test_qkv_slices_touch_only_their_rows(tiny_clip, i, weight_type):
    t = tiny_clip.target_modules(weight_type, "vision")[1]
    packed = tiny_clip.model.visual.transformer.resblocks[1].attn.in_proj_weight
    before = packed.detach().clone()
    torch.testing.assert_close(t.get(), before[i * 64 : (i + 1) * 64], atol=0, rtol=0)
    assert t.key == f"visual.transformer.resblocks.1.attn.in_proj_weight[{i * 64}:{(i + 1) * 64}]"
    new = torch.randn(64, 64)
    t.set(new)
    after = packed.detach()
    torch.testing.assert_close(after[i * 64 : (i + 1) * 64], new, atol=0, rtol=0)
    rest = [r for r in range(192) if not i * 64 <= r < (i + 1) * 64]
    torch.testing.assert_close(after[rest], before[rest], atol=0, rtol=0)


def test_v_slice_is_what_the_value_path_uses(tiny_clip, clip_images):
    """Zeroing W_v of the last vision block leaves local = f(x_in + out_proj bias + v bias path) — i.e. the slice
    that target_modules calls W_v is the one the attention uses as values."""
    t = tiny_clip.target_modules("W_v", "vision")[-1]
    q = tiny_clip.target_modules("W_q", "vision")[-1]
    before = tiny_clip.compute_features(clip_images, {"local"})["local"]
    q.set(torch.zeros_like(q.get()))  # queries do not enter the value path
    torch.testing.assert_close(tiny_clip.compute_features(clip_images, {"local"})["local"], before, atol=1e-6, rtol=0)
    t.set(torch.zeros_like(t.get()))
    assert (tiny_clip.compute_features(clip_images, {"local"})["local"] - before).abs().max() > 1e-3


def test_projection_targets_are_transposed(tiny_clip):
    vis, txt = tiny_clip.target_modules("W_p")
    assert (vis.tower, vis.name, vis.layer, vis.transpose, vis.shape) == ("vision", "visual.proj", -1, True, (32, 64))
    assert (txt.tower, txt.name, txt.layer, txt.transpose, txt.shape) == ("text", "text_projection", -1, True, (32, 64))
    proj = tiny_clip.model.visual.proj
    torch.testing.assert_close(vis.get(), proj.detach().T, atol=0, rtol=0)
    new = torch.randn(32, 64)
    vis.set(new)
    torch.testing.assert_close(proj.detach(), new.T, atol=0, rtol=0)


@pytest.mark.parametrize("weight_type", WEIGHT_TYPES)
def test_get_set_round_trip_is_exact(tiny_clip, clip_images, weight_type):
    before = tiny_clip.compute_features(clip_images, {"image", "local"})
    state = {k: v.clone() for k, v in tiny_clip.model.state_dict().items()}
    for t in tiny_clip.target_modules(weight_type):
        w = t.get().clone()
        t.set(w)
        torch.testing.assert_close(t.get(), w, atol=0, rtol=0)
    for k, v in tiny_clip.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    after = tiny_clip.compute_features(clip_images, {"image", "local"})
    assert torch.equal(after["image"], before["image"]) and torch.equal(after["local"], before["local"])


def test_set_checks_shape_and_unknown_inputs(tiny_clip):
    t = tiny_clip.target_modules("W_up", "vision")[0]
    with pytest.raises(ValueError, match="expected"):
        t.set(torch.zeros(64, 256))
    with pytest.raises(UserError, match="weight type"):
        tiny_clip.target_modules("W_x")
    with pytest.raises(UserError, match="tower"):
        tiny_clip.target_modules("W_up", "audio")
