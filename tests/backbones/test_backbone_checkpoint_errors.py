"""Junk weight files give one-line errors naming the file; loading weights prints no library noise."""

import io
import json
import logging
import random
import subprocess
import sys

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from oodbench.backbones import create_backbone
from oodbench.backbones.checkpoints import library_root_logs
from oodbench.backbones.clip_models import TEST_CLIP_TINY_CFG
from oodbench.cli import main
from oodbench.errors import UserError


def _random_bytes(path):
    # seeded bytes on which torch.load's unpickler raises a KeyError (what users used to see as the whole message)
    rng = random.Random(44)
    path.write_bytes(bytes(rng.getrandbits(8) for _ in range(4000)))


def _json(path):
    path.write_text(json.dumps({"weights": [1, 2, 3]}))


def _int(path):
    torch.save(174812789, path)


def _empty(path):
    path.write_bytes(b"")


def _dict_of_numbers(path):
    torch.save({"epoch": 3, "lr": 0.1}, path)


JUNK = [
    ("random.pt", _random_bytes, "not a PyTorch checkpoint"),
    ("random.bin", _random_bytes, "not a PyTorch checkpoint"),
    ("random.safetensors", _random_bytes, "not a valid safetensors file"),
    ("config.pt", _json, "this is a JSON file, not a checkpoint"),
    ("config.safetensors", _json, "this is a JSON file, not a checkpoint"),
    ("number.pt", _int, "holds an int, not a state dict"),
    ("empty.pt", _empty, "the file is empty"),
    ("empty.safetensors", _empty, "the file is empty"),
    ("numbers.pth", _dict_of_numbers, "not all name -> tensor"),
]


@pytest.mark.parametrize("backbone", ["test_clip_tiny", "test_swin_tiny"])
@pytest.mark.parametrize("filename, write, says", JUNK, ids=[j[0] for j in JUNK])
def test_junk_checkpoint_is_a_one_line_user_error(tmp_path, backbone, filename, write, says):
    path = tmp_path / filename
    write(path)
    with pytest.raises(UserError) as info:
        create_backbone(backbone, pretrained=str(path))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and says in msg
    assert "expected a state dict (parameter name -> tensor) saved with torch.save, or a .safetensors file" in msg


def test_the_random_bytes_are_the_reported_case(tmp_path):
    path = tmp_path / "random.pt"
    _random_bytes(path)
    with pytest.raises(KeyError):
        torch.load(io.BytesIO(path.read_bytes()), weights_only=True)


def test_junk_checkpoint_through_the_cli(tmp_path, capsys):
    path = tmp_path / "junk.pt"
    _random_bytes(path)
    assert main(["run", "--backbone", "test_clip_tiny", "--pretrained", str(path), "--results-root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "not a PyTorch checkpoint" in err[0]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("result.json"))


def test_root_records_held_back_noise_dropped_warnings_reissued(caplog):
    root = logging.getLogger()
    with caplog.at_level(logging.DEBUG, logger="oodbench"):
        with library_root_logs(noise=("initialized randomly",)):
            logging.warning("No pretrained weights loaded for model 'x'. Model initialized randomly.")
            logging.warning("Multiple checkpoints found in d. Using 'a.pt'.")
            logging.getLogger("other").warning("a child logger is left alone")
    root_lines = [r for r in caplog.records if r.name == "root"]
    assert root_lines == []
    ours = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == "oodbench"]
    assert ours == [("oodbench", logging.WARNING, "test_backbone_checkpoint_errors: Multiple checkpoints found in d. Using 'a.pt'.")]
    assert any(r.name == "other" for r in caplog.records)
    assert not root.filters


def test_root_records_dropped_when_the_block_fails(caplog):
    with caplog.at_level(logging.DEBUG, logger="oodbench"), pytest.raises(RuntimeError):
        with library_root_logs():
            logging.error("Failed to download weights for tag 'openai'")
            raise RuntimeError("no network")
    assert not [r for r in caplog.records if "Failed to download" in r.getMessage()]


_QUIET_SCRIPT = """
import json, sys
from pathlib import Path
import open_clip
from safetensors.torch import save_file
from oodbench.backbones import create_backbone
from oodbench.backbones.clip_models import TEST_CLIP_TINY_CFG

out = Path(sys.argv[1])
source = create_backbone("test_clip_tiny", seed=1)
d = out / "dir"
d.mkdir()
(d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TEST_CLIP_TINY_CFG}))
save_file(source.model.state_dict(), str(d / "open_clip_model.safetensors"))
assert create_backbone(f"local-dir:{d}").weights_hash() == source.weights_hash()
open_clip.factory._MODEL_CONFIGS["oodbench-test-tiny"] = TEST_CLIP_TINY_CFG
b = create_backbone("open_clip:oodbench-test-tiny", pretrained=str(d / "open_clip_model.safetensors"))
assert b.weights_hash() == source.weights_hash()
create_backbone("open_clip:oodbench-test-tiny", pretrained="random")
print("loaded")
"""


def test_loading_weights_logs_nothing_on_the_root_logger(tmp_path, caplog):
    source = create_backbone("test_clip_tiny", seed=1)
    d = tmp_path / "dir"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TEST_CLIP_TINY_CFG}))
    save_file(source.model.state_dict(), str(d / "open_clip_model.safetensors"))
    with caplog.at_level(logging.INFO):
        assert create_backbone(f"local-dir:{d}").weights_hash() == source.weights_hash()
        open_clip.factory._MODEL_CONFIGS["oodbench-test-tiny"] = TEST_CLIP_TINY_CFG
        try:
            b = create_backbone("open_clip:oodbench-test-tiny", pretrained=str(d / "open_clip_model.safetensors"))
            assert b.weights_hash() == source.weights_hash()
            create_backbone("open_clip:oodbench-test-tiny", pretrained="random")
        finally:
            del open_clip.factory._MODEL_CONFIGS["oodbench-test-tiny"]
    assert [r.getMessage() for r in caplog.records if r.name == "root"] == []
    assert not any("initialized randomly" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_loading_weights_prints_no_library_lines(tmp_path):
    """In a fresh process (no test logging handlers), local-dir and name+file loading print nothing to stderr."""
    proc = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "loaded"
    assert proc.stderr == ""


def test_real_open_clip_warning_is_kept(tmp_path):
    """Two weight files in a model folder: open_clip's choice is a real warning and reaches the oodbench logger."""
    d = tmp_path / "two"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TEST_CLIP_TINY_CFG}))
    state = create_backbone("test_clip_tiny", seed=1).model.state_dict()
    save_file(state, str(d / "a.safetensors"))
    save_file(state, str(d / "b.safetensors"))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("oodbench")
    logger.addHandler(handler)
    try:
        create_backbone(f"local-dir:{d}")
    finally:
        logger.removeHandler(handler)
    msgs = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any("Multiple checkpoints found" in m for m in msgs), msgs
    assert not any("initialized randomly" in m for m in msgs)
