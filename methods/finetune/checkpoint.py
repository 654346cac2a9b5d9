"""Files of the fine-tuning methods: trained tensors, merged weights, learned prompts, and their application.

Every file is written atomically (:mod:`oodbench.atomic`): a file with its final name is complete.

* ``weights.safetensors`` — the parameters a weight method changed, merged (``base + B @ A``), by parameter
  name; :func:`weights_modification` writes them into a backbone and restores the originals afterwards.
* ``adapters.safetensors`` — the trained factors ``<weight>.B`` / ``<weight>.A``.
* ``prompts.safetensors`` — LoCoOp's learned context ``ctx`` with the class names and settings in its metadata
  (the file ``--prompts FILE`` reads).
* :func:`export_merged` — the whole merged state dict as one file that ``--pretrained FILE`` loads (for
  ``digits_clip``, whose ``--pretrained`` is a weights folder, the folder layout it reads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from oodbench import atomic
from oodbench.errors import UserError

META_KEY = "oodbench"
PROMPTS_FORMAT = "oodbench-locoop-prompts"


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> Path:
    """Atomically write ``tensors`` (contiguous CPU copies) as safetensors with ``meta`` as JSON metadata."""
    from safetensors.torch import save

    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    blob = save(data, metadata={META_KEY: json.dumps(meta or {}, sort_keys=True, default=str)})
    atomic.write_bytes(path, lambda f: f.write(blob))
    return Path(path)


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a file written by :func:`save_tensors`; one-line errors for bad files."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, RuntimeError, Exception) as exc:  # safetensors raises its own error types
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return tensors, meta


# ----------------------------------------------------------------------------------------------- weights
def apply_weights(backbone, weights: dict[str, torch.Tensor]) -> Callable[[], None]:
    """Write ``weights`` (parameter name -> tensor) into ``backbone.model`` in place; returns the undo function,
    which writes the previous values back bit for bit."""
    params = dict(backbone.model.named_parameters())
    missing = [k for k in weights if k not in params]
    if missing:
        raise UserError(f"{backbone.name} has no parameter {missing[0]} (the fine-tuned weights belong to another "
                        "architecture)")
    for k, v in weights.items():
        if tuple(params[k].shape) != tuple(v.shape):
            raise UserError(f"{backbone.name}: {k} is {tuple(params[k].shape)}, the fine-tuned weight {tuple(v.shape)}")
    saved = {k: params[k].detach().clone() for k in weights}
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v.to(dtype=params[k].dtype, device=params[k].device))

    def undo() -> None:
        with torch.no_grad():
            for k, v in saved.items():
                params[k].copy_(v)

    return undo


def weights_modification_fn(path: str | Path) -> Callable:
    """``apply_fn`` of a :class:`~oodbench.method.Modification` that loads ``weights.safetensors`` at apply time."""

    def apply(backbone):
        weights, _ = load_tensors(path)
        return apply_weights(backbone, weights)

    return apply


def merged_state_dict(backbone, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's full state dict with ``weights`` substituted (CPU tensors)."""
    state = {k: v.detach().cpu() for k, v in backbone.model.state_dict().items()}
    for k, v in weights.items():
        if k not in state:
            raise UserError(f"{backbone.name} has no parameter {k}")
        state[k] = v.detach().cpu().to(state[k].dtype)
    return state


def export_merged(backbone, weights: dict[str, torch.Tensor], out_dir: str | Path, meta: dict | None = None) -> Path:
    """Write the merged model for ``oodbench run --backbone NAME --pretrained PATH``; returns PATH.

    A state-dict file ``merged.safetensors`` (every open_clip / timm backbone loads it), or for ``digits_clip`` a
    weights folder ``merged/`` in the layout its loader reads (config copied, fp32 weights).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = merged_state_dict(backbone, weights)
    if backbone.name == "digits_clip":
        return _export_digits(backbone, state, out_dir / "merged", meta)
    path = out_dir / "merged.safetensors"
    save_tensors(path, state, meta)
    return path


def _export_digits(backbone, state: dict[str, torch.Tensor], folder: Path, meta: dict | None) -> Path:
    from oodbench.backbones import digits

    src = backbone.pretrained
    if src is None or str(src).startswith("random"):
        raise UserError("exporting a randomly initialised digits_clip is not supported; fine-tune the shipped "
                        "weights or a folder written by `oodbench digits train`")
    config = digits.read_config(None if src == "shipped" else src)
    weights = {k: v.float() for k, v in state.items() if k != digits.TOKEN_EMBEDDING_KEY}
    with atomic.folder(folder) as tmp:
        atomic.write_json(tmp / digits.CONFIG_FILE, config, indent=2)
        save_tensors(tmp / digits.WEIGHTS_FILE, weights, meta)
        atomic.write_json(tmp / digits.METADATA_FILE, {"fine_tuned": meta or {}}, indent=2)
    return folder


# ----------------------------------------------------------------------------------------------- prompts
def save_prompts(path: str | Path, ctx: torch.Tensor, class_names: list[str], meta: dict[str, Any]) -> Path:
    """Learned LoCoOp context as a prompts file (class names and settings in the metadata)."""
    return save_tensors(path, {"ctx": ctx}, {"format": PROMPTS_FORMAT, "class_names": list(class_names), **meta})


def load_prompts(path: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """``(ctx, meta)`` of a prompts file; a one-line error when it is not one."""
    tensors, meta = load_tensors(path)
    if meta.get("format") != PROMPTS_FORMAT or "ctx" not in tensors:
        raise UserError(f"{path} is not a LoCoOp prompts file (written by `oodbench finetune --method locoop`)")
    return tensors["ctx"], meta
