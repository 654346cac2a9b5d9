"""Reading weight files and loading them strictly, with one-line errors (shared by the CLIP and timm loaders).

Also :func:`library_root_logs`: libraries that log on the *root* logger (open_clip's ``logging.warning(...)``,
printed as ``WARNING:root:...``) are kept out of the way while we build models, so that a user sees our own one-line
messages only. What they say is not lost: warnings that still matter are re-issued on the ``oodbench`` logger.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from oodbench.errors import UserError

log = logging.getLogger("oodbench")

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
RANDOM_INIT = frozenset({"none", "random"})
EXPECTED_CHECKPOINT = "expected a state dict (parameter name -> tensor) saved with torch.save, or a .safetensors file"


def is_random_init(pretrained: str | None) -> bool:
    """``"none"`` / ``"random"`` (any case) ask for a seeded random initialisation."""
    return pretrained is not None and str(pretrained).strip().lower() in RANDOM_INIT


def looks_like_path(value: str) -> bool:
    """A value meant as a file or folder (so that a missing file is reported as such, not as an unknown tag)."""
    return os.sep in value or "/" in value or value.endswith(CHECKPOINT_SUFFIXES) or value.startswith((".", "~"))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``.safetensors``, or a torch pickle of a state dict, possibly nested under
    ``state_dict`` / ``model`` / ``state_dict_ema``, possibly with a ``module.`` prefix from DataParallel).

    Raises:
        UserError: one line naming the file, what it holds instead, and what was expected.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint file not found: {path}")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise UserError(f"{path}: unsupported checkpoint format '{path.suffix}'; expected one of {', '.join(CHECKPOINT_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty; {EXPECTED_CHECKPOINT}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, wrong format, pickled code
        raise UserError(f"{path}: {_unreadable(path, exc)}; {EXPECTED_CHECKPOINT}") from exc
    if isinstance(obj, torch.jit.ScriptModule):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    problem = _not_a_state_dict(obj)
    if problem:
        raise UserError(f"{path} {problem}; {EXPECTED_CHECKPOINT}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _not_a_state_dict(obj: object) -> str:
    """Why ``obj`` is not a state dict ("" when it is)."""
    if not isinstance(obj, dict):
        return f"holds {_a(type(obj).__name__)}, not a state dict"
    if not obj:
        return "holds an empty dict"
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            return f"holds a dict whose entries are not all name -> tensor (e.g. {key!r}: {type(value).__name__})"
    return ""


def _unreadable(path: Path, exc: Exception) -> str:
    """What a file that neither safetensors nor torch.load could read looks like, in a few words."""
    with path.open("rb") as f:
        head = f.read(64)
    if head.lstrip()[:1] in (b"{", b"["):
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            return "this is a JSON file, not a checkpoint"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
    if found and "Unsupported global" in found.group(1):
        return (f"it holds Python objects besides tensors ({found.group(1).strip()}); if you trust the file, "
                "re-save it with torch.save(model.state_dict(), ...)")
    if path.suffix == ".safetensors":
        return f"not a valid safetensors file ({_short(exc)})"
    if zipfile.is_zipfile(path):
        return f"a zip archive that torch.load cannot read ({_short(exc)})"
    return f"not a PyTorch checkpoint (torch.load: {_short(exc)})"


def _short(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if found:
        return found.group(1).strip()
    return first_line(exc)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


@contextmanager
def library_root_logs(noise: tuple[str, ...] = ()) -> Iterator[None]:
    """Keep records that libraries log on the root logger during the block off the terminal.

    Records whose message contains one of ``noise`` are dropped (e.g. open_clip's "Model initialized randomly"
    when we build a model to load weights into it ourselves). If the block raises, every record is dropped: the
    exception, turned into our one-line error, says what failed. Otherwise warnings and errors are re-issued as
    warnings of the ``oodbench`` logger (prefixed with the module that logged them) and the rest as debug messages.

    Only records logged on the root logger itself are held back (through a filter on it); while the block runs,
    a root logger without handlers gets a :class:`logging.NullHandler`, so that the module-level ``logging.info``
    does not install a stderr handler (``logging.basicConfig``) for the rest of the process.
    """
    root = logging.getLogger()
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    root.addFilter(hold)
    try:
        yield
    finally:
        root.removeFilter(hold)
        if placeholder is not None:
            root.removeHandler(placeholder)
    for record in held:
        message = record.getMessage()
        if any(n in message for n in noise):
            continue
        level = logging.WARNING if record.levelno >= logging.WARNING else logging.DEBUG
        log.log(level, "%s: %s", record.module, message)


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
