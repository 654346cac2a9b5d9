"""Loading CLIP weights from a folder or a file says nothing about a random initialisation: open_clip logs "Model
initialized randomly" when it builds a model without weights, which is beside the point when the weights are loaded
next. Every loading path is checked for the message on the root logger, the ``oodbench`` logger, Python warnings and
the process's stdout/stderr; a positive control shows that the capture sees the message when open_clip prints it."""

import json
import logging
import warnings

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from oodbench.backbones import create_backbone
from oodbench.backbones.clip_models import TEST_CLIP_TINY_CFG

MESSAGE = "initialized randomly"


def _captured(fn, caplog, capfd) -> str:
    """Everything ``fn`` logs (any logger, DEBUG and up), warns or prints, as one text."""
    caplog.clear()
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    return "\n".join([logged, *(str(w.message) for w in caught), out, err])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    source = create_backbone("test_clip_tiny", seed=4)
    root = tmp_path_factory.mktemp("w")
    folder = root / "open_clip_dir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TEST_CLIP_TINY_CFG}))
    save_file(source.model.state_dict(), str(folder / "open_clip_model.safetensors"))
    torch.save(source.model.state_dict(), root / "weights.pt")
    return source.weights_hash(), folder, root / "weights.pt"


def test_the_capture_sees_open_clips_message(caplog, capfd):
    """Positive control: open_clip building an architecture without weights does log it."""
    open_clip.factory._MODEL_CONFIGS["oodbench-quiet-tiny"] = TEST_CLIP_TINY_CFG
    try:
        text = _captured(lambda: open_clip.create_model("oodbench-quiet-tiny", pretrained=None), caplog, capfd)
    finally:
        del open_clip.factory._MODEL_CONFIGS["oodbench-quiet-tiny"]
    assert MESSAGE in text


@pytest.mark.parametrize("how", ["local-dir", "open_clip name + file", "open_clip name + folder", "registered + file",
                                 "registered + folder"])
def test_loading_weights_never_says_initialized_randomly(weights, caplog, capfd, how):
    digest, folder, file = weights
    open_clip.factory._MODEL_CONFIGS["oodbench-quiet-tiny"] = TEST_CLIP_TINY_CFG
    try:
        build = {
            "local-dir": lambda: create_backbone(f"local-dir:{folder}"),
            "open_clip name + file": lambda: create_backbone("open_clip:oodbench-quiet-tiny", pretrained=str(file)),
            "open_clip name + folder": lambda: create_backbone("open_clip:oodbench-quiet-tiny", pretrained=str(folder)),
            "registered + file": lambda: create_backbone("test_clip_tiny", pretrained=str(file)),
            "registered + folder": lambda: create_backbone("test_clip_tiny", pretrained=str(folder)),
        }[how]
        built = []
        text = _captured(lambda: built.append(build()), caplog, capfd)
    finally:
        del open_clip.factory._MODEL_CONFIGS["oodbench-quiet-tiny"]
    assert built[0].weights_hash() == digest  # the weights were loaded
    assert MESSAGE not in text, text
