"""What `oodbench finetune` suggests loads (issue 19, finding 9): a `local-dir:` model with `--pretrained` naming a
weights file of its architecture (the fine-tuned `merged.safetensors`), and `digits_clip` with `--pretrained` naming
the weights file inside a weights folder."""

import json

import pytest
import torch
from safetensors.torch import save_file

from oodbench.backbones import create_backbone
from oodbench.backbones.clip_models import TEST_CLIP_TINY_CFG
from oodbench.backbones.digits import WEIGHTS_FILE, shipped_weights_dir
from oodbench.errors import UserError


def _folder(tmp_path, seed: int):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TEST_CLIP_TINY_CFG}))
    save_file(create_backbone("test_clip_tiny", seed=seed).model.state_dict(), str(d / "open_clip_model.safetensors"))
    return d


def test_local_dir_with_a_weights_file_loads_that_file(tmp_path, clip_images):
    d = _folder(tmp_path, seed=1)
    tuned = create_backbone("test_clip_tiny", seed=2)  # stands for a fine-tuned merged model of the same architecture
    merged = tmp_path / "merged.safetensors"
    save_file(tuned.model.state_dict(), str(merged))
    loaded = create_backbone(f"local-dir:{d}", str(merged))
    assert loaded.pretrained == str(merged)
    assert loaded.weights_hash() == tuned.weights_hash() != create_backbone(f"local-dir:{d}").weights_hash()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.encode_image(clip_images), tuned.model.encode_image(clip_images),
                                   atol=0, rtol=0)
    with pytest.raises(UserError, match="carries its own weights"):  # a folder or a tag is still refused
        create_backbone(f"local-dir:{d}", str(d))
    with pytest.raises(UserError, match="carries its own weights"):
        create_backbone(f"local-dir:{d}", "openai")


def test_digits_clip_takes_the_weights_file_of_a_folder():
    shipped = create_backbone("digits_clip")
    via_file = create_backbone("digits_clip", str(shipped_weights_dir() / WEIGHTS_FILE))
    assert via_file.weights_hash() == shipped.weights_hash()
    assert via_file.pretrained == str(shipped_weights_dir())
