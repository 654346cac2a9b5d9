"""Reading weight files and loading them strictly, with one-line errors (shared by the CLIP and timm loaders)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from oodbench.errors import UserError

log = logging.getLogger("oodbench")

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
RANDOM_INIT = frozenset({"none", "random"})


def is_random_init(pretrained: str | None) -> bool:
    """``"none"`` / ``"random"`` (any case) ask for a seeded random initialisation."""
    return pretrained is not None and str(pretrained).strip().lower() in RANDOM_INIT


def looks_like_path(value: str) -> bool:
    """A value meant as a file or folder (so that a missing file is reported as such, not as an unknown tag)."""
    return os.sep in value or "/" in value or value.endswith(CHECKPOINT_SUFFIXES) or value.startswith((".", "~"))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``.safetensors``, or a torch pickle of a state dict, possibly nested under
    ``state_dict`` / ``model`` / ``state_dict_ema``, possibly with a ``module.`` prefix from DataParallel)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint file not found: {path}")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise UserError(f"{path}: unsupported checkpoint format '{path.suffix}'; expected one of {', '.join(CHECKPOINT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, wrong format, pickled code
        raise UserError(f"cannot read checkpoint {path}: {first_line(exc)}") from exc
    if isinstance(obj, torch.jit.ScriptModule):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a Hugging Face model folder: ``model.safetensors``, ``pytorch_model.bin`` or a sharded index."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return read_state_dict(folder / name)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            try:
                shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            except (ValueError, KeyError) as exc:
                raise UserError(f"{folder / index}: not a valid shard index ({first_line(exc)})") from exc
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_state_dict(folder / shard))
            return state
    raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin found")


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line :class:`UserError` on any key/shape mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({_few(unexpected)})")
    if shapes:
        k = shapes[0]
        problems.append(
            f"{len(shapes)} shape mismatch(es) (first: {k} is {tuple(state[k].shape)} in the checkpoint, "
            f"{tuple(own[k].shape)} in the model)"
        )
    if problems:
        raise UserError(f"checkpoint {source} does not fit {arch}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
