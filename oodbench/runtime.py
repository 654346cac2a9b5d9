"""Run-time settings shared by every command: device, seeding, default folders."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from oodbench.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def default_cache_dir() -> Path:
    """``$OODBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/oodbench``, else ``~/.cache/oodbench``."""
    if os.environ.get("OODBENCH_CACHE_DIR"):
        return Path(os.environ["OODBENCH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "oodbench"


def default_results_root() -> Path:
    """``$OODBENCH_RESULTS_ROOT``, else ``./runs``."""
    return Path(os.environ.get("OODBENCH_RESULTS_ROOT", "runs")).expanduser()


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``. ``cuda[:N]`` without a GPU is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA device is visible; use --device cpu or auto")
        return name
    raise UserError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_float32_mode(tf32: bool = False) -> None:
    """fp32 means true fp32 on CUDA unless ``tf32``: TF32 tensor cores off for matmuls and cuDNN convolutions.

    PyTorch allows TF32 in cuDNN convolutions by default (the patch embedding of a ViT is one), which makes a
    "fp32" GPU run differ from the CPU and from the official code's fp32 matmuls.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
