"""Building :class:`~oodbench.backbones.classifier.ClassifierBackbone` objects from timm names and weight files.

``pretrained``: ``None`` = the architecture's default timm weights (or the tag a registered backbone names); a timm
tag (``"tv_in1k"``, downloaded by timm); a local weights file (``.pth/.pt/.bin/.safetensors``: a timm / torchvision
state dict, possibly nested under ``state_dict`` / ``model``; original-format checkpoints go through the
architecture's own timm ``checkpoint_filter_fn``); ``"none"`` / ``"random"`` = seeded random init.
"""

from __future__ import annotations

import difflib
import logging
import sys
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from oodbench.backbones.checkpoints import first_line, is_random_init, load_strict, looks_like_path, read_state_dict
from oodbench.backbones.classifier import ClassifierBackbone
from oodbench.backbones.families import timm_family
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _create(_full(arch, tag), False, model_kwargs)
        source = None
        if not is_random_init(pretrained):
            load_timm_weights(model, pretrained, arch=arch)
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


def load_timm_weights(model: nn.Module, source: str | Path, *, arch: str) -> None:
    """Load a weights file strictly into a timm ``model`` (the architecture's filter converts original formats)."""
    path = Path(source).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass the weights file inside it")
    state = read_state_dict(path)
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
