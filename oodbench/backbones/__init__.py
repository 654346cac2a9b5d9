"""Backbones: wrappers that say what features a model produces (CLIP via open_clip, classifiers via timm).

:func:`create_backbone` resolves a name:

* a registered name (``oodbench list backbones``): ``clip_vit_b16``, ``swinv2_b``, ``test_clip_tiny``, ...;
* ``open_clip:<model>`` — any open_clip architecture (``open_clip:ViT-B-16-quickgelu``), ``pretrained`` = tag,
  weights file or model folder;
* ``timm:<model>`` — any timm architecture (``timm:convnext_tiny``), ``pretrained`` = tag or weights file;
* ``local-dir:<DIR>`` — a CLIP model folder in open_clip or Hugging Face layout.

Importing this package registers the built-in backbones.
"""

from __future__ import annotations

from typing import Any

from oodbench import registry
from oodbench.backbones import classifier_models, clip_models  # noqa: F401  (register the built-in backbones)
from oodbench.backbones import digits as _digits  # noqa: F401,E402  (registers digits_clip)
from oodbench.backbones.base import Backbone, TargetWeight, TowerOutput

__all__ = ["Backbone", "TargetWeight", "TowerOutput", "create_backbone"]


def create_backbone(name: str, pretrained: str | None = None, **options: Any) -> Backbone:
    """Build a backbone by registered name or ``open_clip:`` / ``timm:`` / ``local-dir:`` reference.

    Args:
        name: see the module docstring.
        pretrained: weights: ``None`` = the backbone's default, a tag, a file or folder path, ``"none"`` /
            ``"random"`` = seeded random init.
        **options: backbone options (e.g. ``interpolation="bilinear"``, ``seed=0``).

    Raises:
        oodbench.registry.RegistryError: unknown name (the message lists the known ones).
        oodbench.errors.UserError: weights that cannot be found, read or loaded.
    """
    from oodbench.backbones.clip_loading import load_open_clip

    if name.startswith("open_clip:"):
        return load_open_clip(name[len("open_clip:") :], pretrained, **options)
    if name.startswith("local-dir:"):
        return load_open_clip(name, pretrained, **options)
    if name.startswith("timm:"):
        from oodbench.backbones.classifier_loading import load_timm

        return load_timm(name[len("timm:") :], pretrained, **options)
    factory = registry.get("backbones", name)
    return factory(pretrained=pretrained, **options)
