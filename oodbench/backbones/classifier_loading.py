"""Building :class:`~oodbench.backbones.classifier.ClassifierBackbone` objects from timm names and weight files.

``pretrained``: ``None`` = the architecture's default timm weights (or the tag a registered backbone names); a timm
tag (``"tv_in1k"``, downloaded by timm); a local weights file (``.pth/.pt/.bin/.safetensors``: a timm / torchvision
state dict, possibly nested under ``state_dict`` / ``model``; original-format checkpoints go through the
architecture's own timm ``checkpoint_filter_fn``; a Hugging Face ``Swinv2ForImageClassification`` state dict, or
its model folder with ``config.json``, is converted for timm's Swin-V2, :mod:`oodbench.backbones.hf_swinv2`);
``"none"`` / ``"random"`` = seeded random init.
"""

from __future__ import annotations

import difflib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from oodbench.backbones.checkpoints import (
    first_line,
    is_random_init,
    load_strict,
    looks_like_path,
    read_hf_weights,
    read_state_dict,
)
from oodbench.backbones.classifier import ClassifierBackbone
from oodbench.backbones.families import timm_family
from oodbench.backbones.hf_swinv2 import (
    ConversionError,
    check_hf_swinv2_config,
    hf_swinv2_to_timm_state_dict,
    is_hf_swinv2_state_dict,
)
from oodbench.errors import UserError

log = logging.getLogger("oodbench")


def load_timm(
    model_name: str,
    pretrained: str | None,
    *,
    name: str | None = None,
    default_tag: str | None = None,
    seed: int = 0,
    data_config: dict | None = None,
    family: str | None = None,
    **model_kwargs: Any,
) -> ClassifierBackbone:
    """A timm classifier by name (``arch`` or ``arch.tag``) with weights from timm, a file, or a seeded random init.

    Args:
        model_name: timm model name, optionally with a tag (``resnet50.tv_in1k``).
        pretrained: see the module docstring.
        name: name recorded in results (default ``timm:<model_name>``).
        default_tag: the tag used when ``pretrained`` is None or a file (its preprocessing config is used).
        seed: seed of the random init.
        data_config: overrides of the preprocessing config (``input_size``, ``crop_pct``, ...).
        family: architecture family a registered backbone declares; default the exact lookup of ``model_name``
            (:func:`~oodbench.backbones.families.timm_family`). None whenever ``model_kwargs`` change the architecture.
        **model_kwargs: passed to ``timm.create_model`` (``num_classes``, ``img_size``, ...).
    """
    name = name or f"timm:{model_name}"
    arch, _, tag = model_name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown timm model '{arch}'{hint}; see timm.list_models()")
    tag = tag or default_tag
    family = timm_family(arch, model_kwargs, family)
    if is_random_init(pretrained) or (pretrained is not None and (Path(pretrained).expanduser().exists() or looks_like_path(pretrained))):
        # the file is read before the model is built: a bad file fails at once
        weights = None if is_random_init(pretrained) else read_timm_weights(pretrained)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _create(_full(arch, tag), False, model_kwargs)
        source = None
        if weights is not None:
            load_timm_weights(model, pretrained, arch=arch, weights=weights)
            source = str(pretrained)
        return ClassifierBackbone(model, name, source, data_config=data_config, family=family)
    if pretrained is not None:
        tag = pretrained
    full = _full(arch, tag)
    tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
    if tag and tag not in tags:
        raise UserError(f"'{tag}' is neither a file nor a pretrained tag of {arch}; tags: {', '.join(tags) or 'none'}")
    model = _create(full, True, model_kwargs)
    return ClassifierBackbone(model, name, tag or "default", data_config=data_config, family=family)


def read_timm_weights(source: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The state dict of a weights file, or of a Hugging Face model folder together with its ``config.json``."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{path} is a folder without a Hugging Face config.json; pass the weights file inside it")
        try:
            config = json.loads((path / "config.json").read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{path / 'config.json'}: invalid JSON ({first_line(exc)})") from exc
        if not isinstance(config, dict):
            raise UserError(f"{path / 'config.json'}: expected a JSON object (a Hugging Face model config)")
        return read_hf_weights(path), config
    return read_state_dict(path), None


def load_timm_weights(
    model: nn.Module,
    source: str | Path,
    *,
    arch: str,
    weights: tuple[dict[str, torch.Tensor], dict[str, Any] | None] | None = None,
) -> None:
    """Load a weights file or Hugging Face folder strictly into a timm ``model``.

    Hugging Face Swin-V2 weights are converted (:mod:`oodbench.backbones.hf_swinv2`; a folder's ``config.json`` must
    describe the same architecture); other original formats go through the architecture's timm
    ``checkpoint_filter_fn``. ``weights``: what :func:`read_timm_weights` already read from ``source``.
    """
    path = Path(source).expanduser()
    state, config = weights if weights is not None else read_timm_weights(path)
    if _is_swinv2(model) and is_hf_swinv2_state_dict(state):
        try:
            if config is not None:
                check_hf_swinv2_config(config, model)
            state = hf_swinv2_to_timm_state_dict(state)
        except ConversionError as exc:
            raise UserError(f"{path}: Hugging Face Swin-V2 weights do not fit {arch}: {exc}") from exc
    own = model.state_dict()
    if set(state) != set(own):
        fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
        if fn is not None:
            try:
                filtered = fn(state, model)
            except Exception as exc:  # a filter that cannot handle this layout: report the raw mismatch below
                log.debug("checkpoint_filter_fn of %s failed: %s", arch, exc)
            else:
                if set(filtered) == set(own):
                    state = filtered
    load_strict(model, state, str(path), arch)


def _is_swinv2(model: nn.Module) -> bool:
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    return isinstance(model, SwinTransformerV2)


def _create(full_name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(full_name, pretrained=pretrained, **kwargs).eval()
    except Exception as exc:
        if not pretrained:
            raise UserError(f"cannot build timm model {full_name}: {first_line(exc)}") from exc
        raise UserError(
            f"could not load pretrained weights for {full_name} (no network or hub access?): {first_line(exc)}; "
            "download the weights file elsewhere and pass its path as pretrained"
        ) from exc


def _full(arch: str, tag: str | None) -> str:
    return f"{arch}.{tag}" if tag else arch
