"""Classifier backbones over timm: logits, penultimate features, the last linear layer, per-position logits.

* ``logits`` ``[B, C]``: the model's output.
* ``penultimate`` ``[B, F]``: ``model.forward_head(features, pre_logits=True)``, the input of the last linear layer,
  so ``logits == penultimate @ fc_weight.T + fc_bias`` (ReAct clips it, DICE masks ``fc_weight``).
* ``local_logits`` ``[B, P, C]``: per-position logits for the vision-only LoCoOp term, where the architecture has
  them: Swin-V2 (the reference construction, :mod:`oodbench.backbones.swin`), ViT (:mod:`oodbench.backbones.vit`),
  ResNet (:mod:`oodbench.backbones.resnet`).
* shared ``fc_weight`` ``[C, F]`` and ``fc_bias`` ``[C]``.

Preprocessing comes from the model's own timm pretrained config (``resolve_data_config`` + ``create_transform``).
Layer-wise API: one tower, ``"vision"``, whose blocks are the architecture's blocks flattened bottom to top; the output
is ``TowerOutput(global_=logits, local=local_logits)``. For Swin-V2 and ViT the state at ``layer == num_layers`` is
``[x_out, x_value]`` concatenated along dim 1 (the per-position logits need the last block's value path).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from oodbench.backbones.base import WEIGHT_TYPES, Backbone, TargetWeight, TowerOutput, to_numpy
from oodbench.backbones.classifier_arch import ClassifierArch, GenericArch
from oodbench.errors import IncompatibleError, UserError

log = logging.getLogger("oodbench")


def arch_for(model: nn.Module) -> ClassifierArch:
    """The first adapter that recognises ``model`` (Swin-V2, ViT, ResNet), else the generic one."""
    from oodbench.backbones.resnet import ResNetArch
    from oodbench.backbones.swin import SwinV2Arch
    from oodbench.backbones.vit import ViTArch

    for cls in (SwinV2Arch, ViTArch, ResNetArch, GenericArch):
        if cls.matches(model):
            return cls(model)
    raise AssertionError("unreachable")


class ClassifierBackbone(Backbone):
    """A timm image classifier as an oodbench backbone.

    Args:
        model: a timm model (``forward_features`` / ``forward_head`` / ``get_classifier`` API).
        name: name recorded in results.
        pretrained: where the weights came from, ``None`` for a seeded random init.
        data_config: overrides of timm's ``resolve_data_config`` (e.g. ``{"input_size": (3, 64, 64)}``).
        family: architecture family (:data:`oodbench.backbones.base.FAMILIES`), None when outside them.

    ``capabilities`` is narrowed per instance: ``layerwise`` only with a block-wise adapter (Swin-V2, ViT, ResNet),
    ``local_features`` only where the adapter forms per-position logits.
    """

    kind = "classifier"
    capabilities = frozenset({"layerwise", "local_features"})

    def __init__(self, model: nn.Module, name: str, pretrained: str | None = None, *, data_config: dict | None = None,
                 family: str | None = None):
        super().__init__(model, name, pretrained, family=family)
        import timm.data

        self.arch = arch_for(model)
        caps = set(type(self).capabilities)
        if not self.arch.blocks():
            caps.discard("layerwise")
        if not self.arch.has_local:
            caps.discard("local_features")
        self.capabilities = frozenset(caps)
        cfg = timm.data.resolve_data_config({}, model=model)
        cfg.update(data_config or {})
        self.data_config = cfg
        self._transform = timm.data.create_transform(**cfg, is_training=False)

    # --------------------------------------------------------------------------------- description
    @property
    def provides(self) -> frozenset[str]:
        names = {"logits", "penultimate"}
        if isinstance(self.model.get_classifier(), nn.Linear):
            names |= {"fc_weight", "fc_bias"}
        if self.arch.has_local:
            names.add("local_logits")
        return frozenset(names)

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    def preprocess(self) -> Callable:
        return self._transform

    def preprocess_config(self) -> dict[str, Any]:
        c = self.data_config
        return {
            "input_size": list(c["input_size"]),
            "interpolation": c["interpolation"],
            "crop_pct": float(c["crop_pct"]),
            "crop_mode": c.get("crop_mode", "center"),
            "mean": [float(m) for m in c["mean"]],
            "std": [float(s) for s in c["std"]],
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "architecture": self.arch.arch_name}

    # ----------------------------------------------------------------------------------- features
    @torch.no_grad()
    def compute_features(self, images: torch.Tensor, names: set[str]) -> dict[str, torch.Tensor]:
        """``logits`` ``[B, C]``, ``penultimate`` ``[B, F]``, ``local_logits`` ``[B, P, C]`` as requested."""
        unknown = set(names) - self.provides
        if unknown:
            raise IncompatibleError(
                f"{self.name} (classifier) cannot produce {', '.join(sorted(unknown))}; it provides {', '.join(sorted(self.provides))}"
            )
        want = set(names) & {"logits", "penultimate", "local_logits"}
        if not want:
            return {}
        local = None
        if "local_logits" in want:
            n = self.num_layers("vision")
            x_in = self.hidden("vision", images, n - 1)
            x_out = self.arch.run(x_in, n - 1, n)
            local = self.arch.local_logits(self.arch.value_state(x_in) if self.arch.local_from_input else x_out)
            feats = self.arch.finish(x_out)
        else:
            feats = self.model.forward_features(images)
        out: dict[str, torch.Tensor] = {}
        if "penultimate" in want or "logits" in want:
            pre = self.model.forward_head(feats, pre_logits=True)
            if "penultimate" in want:
                out["penultimate"] = pre
            if "logits" in want:
                out["logits"] = self.model.get_classifier()(pre)
        if local is not None:
            out["local_logits"] = local
        return out

    @torch.no_grad()
    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """``model.forward_features``: the pre-pool map (NCHW for CNNs, NHWC for Swin, NLC tokens for ViT)."""
        return self.model.forward_features(images)

    def shared_features(self, names: set[str], class_names: list[str], prompt: str) -> dict[str, Any]:
        """``fc_weight`` ``[C, F]`` and ``fc_bias`` ``[C]`` (float32) of the last linear layer."""
        out: dict[str, Any] = {}
        fc = self.model.get_classifier()
        if {"fc_weight", "fc_bias"} & set(names):
            if not isinstance(fc, nn.Linear):
                raise IncompatibleError(f"{self.name}: the classifier is {type(fc).__name__}, not a linear layer")
            if "fc_weight" in names:
                out["fc_weight"] = to_numpy(fc.weight).astype(np.float32)
            if "fc_bias" in names:
                out["fc_bias"] = (
                    to_numpy(fc.bias).astype(np.float32) if fc.bias is not None else np.zeros(fc.out_features, np.float32)
                )
        return out

    # ------------------------------------------------------------------------------------ weights
    def weight_types(self) -> tuple[str, ...]:
        """Weight types :meth:`target_modules` supports for this architecture."""
        return self.arch.weight_types

    def target_modules(self, weight_type: str, tower: str | None = None) -> list[TargetWeight]:
        """Per block, bottom to top. Swin-V2 / ViT: W_q/W_k/W_v (``attn.qkv`` row slices), W_o (``attn.proj``),
        W_up (``mlp.fc1``), W_down (``mlp.fc2``). ResNet: W_up (``conv3``), W_down (``conv1``), kernels as 2-D."""
        if weight_type not in WEIGHT_TYPES:
            raise UserError(f"unknown weight type '{weight_type}'; known: {', '.join(WEIGHT_TYPES)}")
        if tower not in (None, "vision"):
            raise UserError(f"{self.name}: unknown tower '{tower}'; a classifier has only 'vision'")
        if weight_type not in self.arch.weight_types:
            supported = ", ".join(self.arch.weight_types) or "none"
            raise IncompatibleError(f"{self.name} ({self.arch.arch_name}) has no {weight_type} weights; supported: {supported}")
        names = {id(p): n for n, p in self.model.named_parameters()}
        return [self.arch.target(weight_type, i, blk, names) for i, blk in enumerate(self.arch.blocks())]

    # --------------------------------------------------------------------------- layer-wise API
    def towers(self) -> dict[str, int]:
        if "layerwise" not in self.capabilities:
            raise self.arch._no_layers()
        return {"vision": len(self.arch.blocks())}

    def num_layers(self, tower: str = "vision") -> int:
        self._check_tower(tower)
        n = len(self.arch.blocks())
        if n == 0:
            raise self.arch._no_layers()
        return n

    def hidden(self, tower: str, inputs: torch.Tensor, layer: int) -> torch.Tensor:
        """State entering block ``layer`` (stem / patch embedding / downsampling included)."""
        n = self.num_layers(tower)
        _check_layer(layer, n)
        a = self.arch
        x = a.enter(a.embed(inputs), 0)
        if layer < n:
            return self._advance(x, layer)
        if not a.local_from_input:
            return a.run(x, 0, n)
        x_in = self._advance(x, n - 1)
        return torch.cat([a.run(x_in, n - 1, n), a.value_state(x_in)], dim=1)

    def _advance(self, x0: torch.Tensor, layer: int) -> torch.Tensor:
        """From the state entering block 0 to the state entering block ``layer``."""
        if layer == 0:
            return x0
        return self.arch.enter(self.arch.run(x0, 0, layer), layer)

    def forward_from(self, tower: str, hidden: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> TowerOutput:
        """Logits ``[B, C]`` and per-position logits ``[B, P, C]`` from the state entering block ``layer``."""
        n = self.num_layers(tower)
        _check_layer(layer, n)
        a = self.arch
        if layer == n:
            if a.local_from_input:
                half = hidden.shape[1] // 2
                x_out, x_local = hidden[:, :half], hidden[:, half:]
            else:
                x_out = x_local = hidden
        elif a.local_from_input:
            x_in = a.run(hidden, layer, n - 1)
            if layer < n - 1:
                x_in = a.enter(x_in, n - 1)
            x_out, x_local = a.run(x_in, n - 1, n), a.value_state(x_in)
        else:
            x_out = x_local = a.run(hidden, layer, n)
        logits = self.model.forward_head(a.finish(x_out))
        return TowerOutput(global_=logits, local=a.local_logits(x_local))

    def _check_tower(self, tower: str) -> None:
        if tower != "vision":
            raise UserError(f"{self.name}: unknown tower '{tower}'; a classifier has only 'vision'")


def _check_layer(layer: int, n: int) -> None:
    if not 0 <= layer <= n:
        raise ValueError(f"layer must be in 0..{n}, got {layer}")
