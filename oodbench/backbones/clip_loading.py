"""Building :class:`~oodbench.backbones.clip.ClipBackbone` objects from every supported source.

* an open_clip model name and a pretrained tag (``ViT-B-16-quickgelu`` + ``openai``; downloads through open_clip);
* an open_clip model name (or an architecture config) and a local weights file: an open_clip state dict
  (``.pt/.pth/.bin/.safetensors``) or a Hugging Face ``CLIPModel`` state dict, converted on load;
* a model folder (``local-dir:DIR``): open_clip's layout (``open_clip_config.json`` + weights) or Hugging Face's
  (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``, the ``openai/clip-vit-base-patch16`` layout),
  the latter converted to open_clip (:mod:`oodbench.backbones.hf_clip`).

Random initialisation (``pretrained="none"`` or ``"random"``) is seeded, so the weights hash is the same on every
machine with the same torch version. Every failure is a one-line :class:`~oodbench.errors.UserError`.
"""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from oodbench.backbones.checkpoints import (
    first_line,
    is_random_init,
    library_root_logs,
    load_strict,
    looks_like_path,
    read_hf_weights,
    read_state_dict,
)
from oodbench.backbones.clip import INTERPOLATIONS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipBackbone
from oodbench.backbones.families import clip_family, open_clip_family
from oodbench.backbones.hf_clip import (
    ConversionError,
    hf_to_open_clip_state_dict,
    is_hf_clip_state_dict,
    open_clip_cfg_from_hf_config,
)
from oodbench.errors import UserError

log = logging.getLogger("oodbench")

_BACKBONE_OPTIONS = ("mean", "std", "interpolation", "tokenizer")
#: What open_clip logs when it builds a model without weights: true, and beside the point when we load them next
#: (or were asked for a random init).
_NO_WEIGHTS_YET = ("initialized randomly",)


def load_open_clip(
    model_name: str,
    pretrained: str | None,
    *,
    name: str | None = None,
    force_quick_gelu: bool = False,
    seed: int = 0,
    family: str | None = None,
    **options: Any,
) -> ClipBackbone:
    """An open_clip architecture by name with weights from a tag, a file, a folder, or a seeded random init.

    Args:
        model_name: open_clip model name (``open_clip.list_models()``), e.g. ``"ViT-B-16-quickgelu"``; a
            ``local-dir:DIR`` name loads the folder; ``pretrained`` may then name a weights file of that
            architecture (e.g. the ``merged.safetensors`` that ``oodbench finetune`` writes), loaded over it.
        pretrained: open_clip tag (``"openai"``), path to a weights file or model folder, or ``"none"`` /
            ``"random"`` / ``None`` for a random init seeded with ``seed``.
        name: name recorded in results (default ``open_clip:<model_name>``).
        force_quick_gelu: use QuickGELU (as OpenAI's weights were trained) whatever the config says.
        family: architecture family; default the exact lookup of ``model_name``
            (:func:`~oodbench.backbones.families.open_clip_family`), for a folder of its dimensions.
        **options: :class:`ClipBackbone` keyword options (``interpolation``, ``mean``, ``std``, ``tokenizer``).
    """
    _check_options(options)
    if model_name.startswith("local-dir:"):
        weights = None
        if pretrained and not is_random_init(pretrained):
            if not Path(pretrained).expanduser().is_file():
                raise UserError(f"'{model_name}' carries its own weights; --pretrained may only name a weights file "
                                f"of its architecture (such as a fine-tuned merged.safetensors), not '{pretrained}'")
            weights = pretrained
        return load_clip_dir(model_name[len("local-dir:") :], name=name, family=family, weights=weights, **options)
    name = name or f"open_clip:{model_name}"
    known = open_clip.list_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown open_clip model '{model_name}'{hint}; see open_clip.list_models()")
    tokenizer = options.pop("tokenizer", None)

    if pretrained is None or is_random_init(pretrained):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _create(model_name, None, force_quick_gelu)
        tag = None
    elif Path(pretrained).expanduser().exists() or looks_like_path(pretrained):
        state = read_clip_weights(pretrained)  # before building: a bad file fails at once
        model = _create(model_name, None, force_quick_gelu)
        load_clip_weights(model, pretrained, arch=model_name, state=state)
        tag = str(pretrained)
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags:
            raise UserError(
                f"'{pretrained}' is neither a file nor a pretrained tag of {model_name}; tags: {', '.join(tags) or 'none'}"
            )
        if open_clip.get_pretrained_cfg(model_name, pretrained).get("quick_gelu") and not force_quick_gelu:
            log.info("%s: weights '%s' were trained with QuickGELU; using it", model_name, pretrained)
            force_quick_gelu = True
        model = _create(model_name, pretrained, force_quick_gelu)
        tag = pretrained
    if tokenizer is None:
        with library_root_logs():
            tokenizer = open_clip.get_tokenizer(model_name, context_length=model.context_length)
    return _wrap(model, name, tag, tokenizer, options, family or open_clip_family(model_name))


def clip_from_config(
    cfg: dict[str, Any], pretrained: str | None, *, name: str, seed: int = 0, family: str | None = None, **options: Any
) -> ClipBackbone:
    """An open_clip ``CLIP(**cfg)``: seeded random weights, or weights from a file / model folder.

    ``family`` defaults to the one whose dimensions ``cfg`` has (:func:`~oodbench.backbones.families.clip_family`).
    """
    _check_options(options)
    tokenizer = options.pop("tokenizer", None)
    load = pretrained is not None and not is_random_init(pretrained)
    state = read_clip_weights(pretrained) if load else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg)
    tag = None
    if load:
        load_clip_weights(model, pretrained, arch=name, state=state)
        tag = str(pretrained)
    return _wrap(model.eval(), name, tag, tokenizer, options, family or clip_family(model))


def load_clip_weights(model: nn.Module, source: str | Path, *, arch: str,
                      state: dict[str, torch.Tensor] | None = None) -> None:
    """Load a weights file or model folder (open_clip or Hugging Face format) strictly into ``model``.

    ``state``: what :func:`read_clip_weights` already read from ``source`` (read here when None).
    """
    path = Path(source).expanduser()
    if state is None:
        state = read_clip_weights(path)
    load_strict(model, _to_open_clip_keys(model, state, str(path)), str(path), arch)


def read_clip_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a weights file or model folder (open_clip or Hugging Face layout), keys as stored."""
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() and not (path / "open_clip_config.json").is_file():
            state = read_hf_weights(path)
        else:
            with library_root_logs():
                found = open_clip.factory._find_checkpoint_in_dir(path)
            if found is None:
                raise UserError(f"{path}: no weights file (*.safetensors, *.bin, *.pth) in this folder")
            state = read_state_dict(found)
    elif path.is_file():
        state = read_state_dict(path)
    else:
        raise UserError(f"checkpoint not found: {path}")
    return state


def load_clip_dir(folder: str | Path, *, name: str | None = None, family: str | None = None,
                  weights: str | Path | None = None, **options: Any) -> ClipBackbone:
    """A CLIP model folder: open_clip ``local-dir`` layout or a Hugging Face ``CLIPModel`` folder.

    ``family`` defaults to the one whose dimensions the folder's model has (:func:`~oodbench.backbones.families.clip_family`).
    ``weights``: a weights file of the folder's architecture loaded (strictly) in place of the folder's own weights,
    e.g. a fine-tuned ``merged.safetensors``; it is then the recorded ``pretrained``.
    """
    _check_options(options)
    path = Path(folder).expanduser()
    name = name or f"local-dir:{folder}"
    if not path.is_dir():
        raise UserError(f"model folder not found: {path}")
    tokenizer = options.pop("tokenizer", None)
    if (path / "open_clip_config.json").is_file():
        spec = f"local-dir:{path}"
        try:
            with library_root_logs(noise=_NO_WEIGHTS_YET):
                model = open_clip.create_model(spec, load_weights=False)
        except Exception as exc:
            raise UserError(f"{path / 'open_clip_config.json'}: {first_line(exc)}") from exc
        load_clip_weights(model, weights or path, arch=name)
        if tokenizer is None:
            with library_root_logs():
                tokenizer = open_clip.get_tokenizer(spec, context_length=model.context_length)
        return _wrap(model, name, str(weights or path), tokenizer, options, family or clip_family(model))
    if (path / "config.json").is_file():
        model, pre = _hf_clip_model(path)
        if weights is not None:
            load_clip_weights(model, weights, arch=name)
        else:
            load_strict(model, _to_open_clip_keys(model, read_hf_weights(path), str(path)), str(path), name)
        for key, value in pre.items():
            options.setdefault(key, value)
        return _wrap(model, name, str(weights or path), tokenizer, options, family or clip_family(model))
    raise UserError(f"{path}: neither open_clip_config.json (open_clip) nor config.json (Hugging Face) found")


# ------------------------------------------------------------------------------------------- helpers
def _create(model_name: str, tag: str | None, force_quick_gelu: bool) -> nn.Module:
    """``open_clip.create_model`` with its root-logger lines held back (:func:`library_root_logs`); without a tag the
    weights are random (asked for, or loaded by the caller next), so open_clip's "initialized randomly" is dropped."""
    try:
        with library_root_logs(noise=_NO_WEIGHTS_YET if tag is None else ()):
            return open_clip.create_model(model_name, pretrained=tag, force_quick_gelu=force_quick_gelu).eval()
    except Exception as exc:
        if tag is None:
            raise UserError(f"cannot build open_clip model {model_name}: {first_line(exc)}") from exc
        raise UserError(
            f"could not load weights '{tag}' for {model_name} (no network or hub access?): {first_line(exc)}; "
            "download the checkpoint elsewhere and pass its path as pretrained"
        ) from exc


def _to_open_clip_keys(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    if is_hf_clip_state_dict(state):
        try:
            state = hf_to_open_clip_state_dict(state)
        except ConversionError as exc:
            raise UserError(f"{source}: Hugging Face CLIP weights cannot be converted: {exc}") from exc
    if "logit_scale" in state and state["logit_scale"].shape != model.logit_scale.shape:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    return state


def _hf_clip_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Build the open_clip ``CLIP`` that a Hugging Face ``config.json`` describes, plus its preprocessing."""
    try:
        config = json.loads((path / "config.json").read_text())
        cfg = open_clip_cfg_from_hf_config(config)
    except (ValueError, ConversionError) as exc:
        raise UserError(f"{path / 'config.json'}: not a usable CLIP config ({exc})") from exc
    model = open_clip.CLIP(**cfg).eval()
    pre: dict[str, Any] = {}
    pp = path / "preprocessor_config.json"
    if pp.is_file():
        try:
            p = json.loads(pp.read_text())
        except ValueError as exc:
            raise UserError(f"{pp}: invalid JSON ({exc})") from exc
        if "image_mean" in p and "image_std" in p:
            pre["mean"], pre["std"] = tuple(p["image_mean"]), tuple(p["image_std"])
        if p.get("resample") in (2, 3):
            pre["interpolation"] = {2: "bilinear", 3: "bicubic"}[p["resample"]]
    return model, pre


def _wrap(model: nn.Module, name: str, pretrained: str | None, tokenizer, options: dict[str, Any],
          family: str | None) -> ClipBackbone:
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    mean = options.pop("mean", None) or tuple(cfg.get("mean", OPENAI_CLIP_MEAN))
    std = options.pop("std", None) or tuple(cfg.get("std", OPENAI_CLIP_STD))
    interpolation = options.pop("interpolation", None)
    if interpolation is None:
        interpolation = cfg.get("interpolation", "bicubic")
        interpolation = interpolation if interpolation in INTERPOLATIONS else "bicubic"
    return ClipBackbone(
        model.eval(), name, pretrained, tokenizer=tokenizer,
        mean=mean, std=std, interpolation=interpolation, family=family,
    )


def _check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(_BACKBONE_OPTIONS))
    if unknown:
        raise UserError(f"unknown CLIP backbone option(s) {', '.join(unknown)}; known: {', '.join(_BACKBONE_OPTIONS)}, seed, force_quick_gelu")
