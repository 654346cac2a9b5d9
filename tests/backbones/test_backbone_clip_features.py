"""CLIP backbone outputs against straightforward re-implementations from the raw weights."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from oodbench.backbones.clip import ClipBackbone
from oodbench.errors import IncompatibleError, UserError

from backbone_refs import clip_reference_local as reference_local


def test_image_feature_equals_open_clip(tiny_clip, clip_images):
    out = tiny_clip.compute_features(clip_images, {"image"})
    with torch.no_grad():
        ref = tiny_clip.model.encode_image(clip_images)
    assert set(out) == {"image"}
    assert out["image"].shape == (3, 32)
    torch.testing.assert_close(out["image"], ref, atol=1e-5, rtol=0)


def test_local_features_are_the_value_path(tiny_clip, clip_images):
    out = tiny_clip.compute_features(clip_images, {"image", "local"})
    ref = reference_local(tiny_clip.model, clip_images)
    assert out["local"].shape == (3, tiny_clip.num_patches, 32) == (3, 16, 32)
    torch.testing.assert_close(out["local"], ref, atol=1e-5, rtol=0)
    # ... and they are not the standard patch tokens
    v = tiny_clip.model.visual
    v.output_tokens = True
    with torch.no_grad():
        _, tokens = v(clip_images)
    v.output_tokens = False
    assert (tokens @ v.proj - out["local"]).abs().max() > 1e-2


def test_local_features_follow_weight_changes(tiny_clip, clip_images):
    """Truncating the last block's W_up changes both global and local, and local still matches the reference."""
    before = tiny_clip.compute_features(clip_images, {"image", "local"})
    tw = tiny_clip.target_modules("W_up", "vision")[-1]
    u, s, vh = torch.linalg.svd(tw.get(), full_matrices=False)
    tw.set((u[:, :10] * s[:10]) @ vh[:10])
    after = tiny_clip.compute_features(clip_images, {"image", "local"})
    assert (after["local"] - before["local"]).abs().max() > 1e-3
    assert (after["image"] - before["image"]).abs().max() > 1e-3
    torch.testing.assert_close(after["local"], reference_local(tiny_clip.model, clip_images), atol=1e-5, rtol=0)


def test_compute_features_rejects_unknown_names(tiny_clip, clip_images):
    assert tiny_clip.compute_features(clip_images, {"logits", "text"}) == {}
    with pytest.raises(IncompatibleError, match="penultimate"):
        tiny_clip.compute_features(clip_images, {"image", "penultimate"})


@pytest.mark.parametrize("tower", ["vision", "text"])
def test_layerwise_api_equals_full_forward(tiny_clip, clip_images, tower):
    inputs = clip_images if tower == "vision" else tiny_clip.tokenize(["a photo of a cat", "a dog", "x y z"])
    with torch.no_grad():
        if tower == "vision":
            full = tiny_clip.compute_features(clip_images, {"image", "local"})
            ref_global, ref_local = full["image"], full["local"]
        else:
            ref_global, ref_local = tiny_clip.model.encode_text(inputs), None
        n = tiny_clip.towers()[tower]
        for layer in range(n + 1):
            h = tiny_clip.hidden(tower, inputs, layer)
            out = tiny_clip.forward_from(tower, h, layer, inputs)
            torch.testing.assert_close(out.global_, ref_global, atol=1e-5, rtol=0)
            if ref_local is None:
                assert out.local is None
            else:
                torch.testing.assert_close(out.local, ref_local, atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        tiny_clip.hidden(tower, inputs, n + 1)


def test_hidden_states_are_the_block_inputs(tiny_clip, clip_images):
    """hidden(vision, x, l) is exactly what block l receives in open_clip's own forward."""
    caps = []
    handles = [
        blk.register_forward_pre_hook(lambda m, args: caps.append(args[0].detach()))
        for blk in tiny_clip.model.visual.transformer.resblocks
    ]
    with torch.no_grad():
        tiny_clip.model.encode_image(clip_images)
        for layer in range(2):
            torch.testing.assert_close(tiny_clip.hidden("vision", clip_images, layer), caps[layer], atol=1e-6, rtol=0)
    for h in handles:
        h.remove()


def test_trimmed_text_equals_full_context(tiny_clip, prompts):
    ids = tiny_clip.tokenize(prompts)
    with torch.no_grad():
        full = tiny_clip.model.encode_text(ids)
        trimmed = tiny_clip.encode_text(prompts)
        in_pairs = tiny_clip.encode_text(prompts, batch_size=2)
    assert trimmed.shape == (4, 32)
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(in_pairs, full, atol=1e-5, rtol=0)
    assert tiny_clip.hidden("text", ids, 0).shape[1] == int(ids.argmax(-1).max()) + 1 < ids.shape[1]


def test_shared_features(tiny_clip):
    out = tiny_clip.shared_features({"text", "logit_scale"}, ["cat", "dog"], "a photo of a {}")
    with torch.no_grad():
        ref = tiny_clip.model.encode_text(tiny_clip.tokenize(["a photo of a cat", "a photo of a dog"])).numpy()
    assert out["text"].dtype == np.float32 and out["text"].shape == (2, 32)
    np.testing.assert_allclose(out["text"], ref, atol=1e-5)
    assert out["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-6)  # open_clip's init: log(1/0.07)
    assert tiny_clip.shared_features({"logit_scale"}, ["cat"], "{}").keys() == {"logit_scale"}


def test_text_encoder_cache_key_tracks_text_weights(tiny_clip, prompts):
    enc = tiny_clip.text_encoder()
    emb = enc.encode_text(prompts)
    assert isinstance(emb, np.ndarray) and emb.dtype == np.float32 and emb.shape == (4, 32)
    key = enc.cache_key
    assert key == tiny_clip.text_encoder().cache_key
    tiny_clip.target_modules("W_up", "vision")[0].set(torch.zeros(256, 64))
    assert enc.cache_key == key  # the vision tower is not part of it
    w = tiny_clip.target_modules("W_up", "text")[1]
    w.set(w.get() * 0.5)
    assert enc.cache_key != key
    assert not np.allclose(enc.encode_text(prompts), emb)


def test_text_encoder_cache_key_tracks_tokenizer(tiny_clip):
    key = tiny_clip.text_cache_key()
    other = ClipBackbone(tiny_clip.model, "x", tokenizer=open_clip.tokenizer.SimpleTokenizer(context_length=12))
    assert other.text_cache_key() != key


def test_preprocess_matches_spec_pipeline(tiny_clip):
    from torchvision import transforms as T

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    x = tiny_clip.preprocess()(img)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    ref = T.Compose([T.Resize(32, T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(), T.Normalize(mean, std)])(img)
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x, ref)
    cfg = tiny_clip.preprocess_config()
    assert cfg["interpolation"] == "bicubic" and cfg["resize"] == cfg["crop"] == 32 and cfg["mean"] == list(mean)
    grey = tiny_clip.preprocess()(img.convert("L"))
    assert grey.shape == (3, 32, 32)


def test_bilinear_option(clip_images):
    from oodbench.backbones import create_backbone

    b = create_backbone("test_clip_tiny", interpolation="bilinear")
    assert b.preprocess_config()["interpolation"] == "bilinear"
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    bicubic = create_backbone("test_clip_tiny").preprocess()(img)
    assert (b.preprocess()(img) - bicubic).abs().max() > 1e-3
    with pytest.raises(UserError, match="interpolation"):
        create_backbone("test_clip_tiny", interpolation="nearest")


def test_custom_text_clip_is_supported(clip_images, prompts):
    from oodbench.backbones.clip_models import TEST_CLIP_TINY_CFG

    torch.manual_seed(0)
    model = open_clip.CustomTextCLIP(**TEST_CLIP_TINY_CFG).eval()
    b = ClipBackbone(model, "custom")
    with torch.no_grad():
        torch.testing.assert_close(b.encode_text(prompts), model.encode_text(b.tokenize(prompts)), atol=1e-5, rtol=0)
        torch.testing.assert_close(b.compute_features(clip_images, {"local"})["local"], reference_local(model, clip_images), atol=1e-5, rtol=0)
    assert b.target_modules("W_up", "text")[0].name == "text.transformer.resblocks.0.mlp.c_fc.weight"
    assert b.target_modules("W_p", "text")[0].name == "text.text_projection"


def test_weights_hash_is_seeded(tiny_clip):
    from oodbench.backbones import create_backbone

    assert tiny_clip.weights_hash() == create_backbone("test_clip_tiny").weights_hash()
    assert tiny_clip.weights_hash() != create_backbone("test_clip_tiny", seed=1).weights_hash()
    assert tiny_clip.describe() == {
        "name": "test_clip_tiny", "kind": "clip", "family": None, "pretrained": None,
        "weights_hash": tiny_clip.weights_hash(),
    }
