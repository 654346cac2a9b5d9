"""The post-attention entry point of the CLIP layer-wise API and the class-token-only last block."""

import pytest
import torch

from oodbench.backbones import create_backbone
from oodbench.backbones.clip_blocks import class_token_output


@pytest.fixture(scope="module")
def clip():
    return create_backbone("test_clip_tiny")


def test_mlp_stage_is_bit_identical_to_the_block(clip):
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ids = clip.tokenize(["a photo of a cat", "a dog", "a much longer prompt than the other two"])
    with torch.no_grad():
        for tower, inputs in (("vision", x), ("text", ids)):
            text_ids = ids if tower == "text" else None
            for layer in range(clip.num_layers(tower)):
                h = clip.hidden(tower, inputs, layer)
                full = clip.forward_from(tower, h, layer, text_ids)
                split = clip.forward_from_mlp(tower, clip.hidden_mlp(tower, h, layer, inputs), layer, text_ids)
                assert torch.equal(full.global_, split.global_), (tower, layer)
                if full.local is not None:
                    assert torch.equal(full.local, split.local), (tower, layer)


def test_class_token_output_equals_the_full_block(clip):
    blocks = clip.visual.transformer.resblocks
    x = torch.randn(4, 17, blocks[0].ln_1.normalized_shape[0], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = blocks[-1](x if clip.visual.transformer.batch_first else x.transpose(0, 1))
        full = full if clip.visual.transformer.batch_first else full.transpose(0, 1)
        torch.testing.assert_close(class_token_output(blocks[-1], x), full[:, :1], rtol=1e-6, atol=1e-6)


def test_global_features_equal_open_clip_encode_image(clip):
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(clip.compute_features(x, {"image"})["image"], clip.model.encode_image(x),
                                   rtol=1e-5, atol=1e-6)
