"""The backbone contract: what a model produces, and the weights a modifier may touch.

Two kinds implement it:

* ``clip`` (open_clip models, :mod:`oodbench.backbones.clip`): global and value-path local image
  embeddings, text embeddings for prompts, the logit scale.
* ``classifier`` (timm models, :mod:`oodbench.backbones.classifier`): logits, pooled penultimate features,
  the last linear layer, per-position logits where the architecture has them.

Both expose the **layer-wise API** that the SeTAR search uses to re-run only what a candidate can change:
a tower is a sequence of blocks ``0 .. num_layers(tower)-1`` (bottom to top);
``hidden(tower, inputs, layer)`` returns the hidden state entering block ``layer`` and
``forward_from(tower, hidden, layer, inputs)`` runs blocks ``layer ..`` and the heads, returning what the
LoCoOp loss needs (:class:`TowerOutput`). ``forward_from(t, hidden(t, x, l), l, x)`` equals the full forward.

What a backbone can do beyond features is **declared**, not probed: :attr:`Backbone.capabilities` holds names of
:data:`CAPABILITIES`, and callers test ``"mlp_stage" in backbone.capabilities`` (or call :meth:`Backbone.require`).
The base class declares every optional method and raises :class:`~oodbench.errors.IncompatibleError` from it.
:attr:`Backbone.family` names the architecture family that per-backbone tables (the SeTAR hyperparameters) are
keyed by; it is set by whoever builds the backbone from an exact architecture lookup, never from a name substring.

Backbones never import scores, results or the CLI.
"""

from __future__ import annotations

import contextlib

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from oodbench.errors import IncompatibleError

WEIGHT_TYPES = ("W_q", "W_k", "W_v", "W_o", "W_up", "W_down", "W_p")

#: What a backbone may declare in :attr:`Backbone.capabilities`:
#:
#: * ``layerwise``: :meth:`Backbone.towers` / :meth:`~Backbone.hidden` / :meth:`~Backbone.forward_from` (the SeTAR
#:   search, the LoCoOp loss);
#: * ``mlp_stage``: :meth:`Backbone.hidden_mlp` / :meth:`~Backbone.forward_from_mlp`, entering a block after its
#:   attention half (the search of ``W_up`` / ``W_down`` starts there);
#: * ``layer_states``: :meth:`Backbone.hidden_from`, the state entering a block from the state entering a lower one
#:   (the search keeps the states of one forward instead of starting each step from the input);
#: * ``text_encoder``: :meth:`Backbone.text_encoder`, the encoder object NegLabel mining is given;
#: * ``local_features``: per-position outputs (CLIP ``local``, classifier ``local_logits``; ``TowerOutput.local``
#:   of the vision tower), which the LoCoOp OOD term and GL-MCM need;
#: * ``fast_arithmetic``: :meth:`Backbone.fast_arithmetic`, a context in which the layer-wise calls use a fused
#:   arithmetic equal to the default to float32 rounding (a search evaluating many candidates uses it).
CAPABILITIES = ("layerwise", "mlp_stage", "layer_states", "text_encoder", "local_features", "fast_arithmetic")

#: Architecture families (:attr:`Backbone.family`) of the paper's backbones and the embedded benchmark's model.
FAMILIES = ("clip-b16", "clip-l14", "swinv2-b", "resnet50", "digits")


@dataclass
class TargetWeight:
    """One weight matrix a modifier may replace, seen as a 2-D ``[out, in]`` matrix (nn.Linear convention).

    Attributes:
        tower: ``"vision"`` or ``"text"``.
        weight_type: one of :data:`WEIGHT_TYPES` (CNNs: ``W_up`` / ``W_down`` name the 1x1 convs, see the backbone).
        layer: block index inside the tower, 0 = bottom; ``-1`` for projections (``W_p``).
        name: dotted parameter name in ``backbone.model`` (e.g. ``visual.transformer.resblocks.11.mlp.c_fc.weight``).
        param: the parameter itself.
        rows: row slice of a packed parameter (open_clip ``attn.in_proj_weight`` holds q, k, v stacked).
        transpose: the parameter is stored ``[in, out]`` (open_clip ``visual.proj``, used as ``x @ proj``).
        kernel_shape: original 4-D shape of a conv kernel, viewed here as ``[out, in*kh*kw]``.
    """

    tower: str
    weight_type: str
    layer: int
    name: str
    param: nn.Parameter = field(repr=False)
    rows: slice | None = None
    transpose: bool = False
    kernel_shape: tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        """Stable identifier (parameter name plus row slice), used to cache SVD factors."""
        return self.name if self.rows is None else f"{self.name}[{self.rows.start}:{self.rows.stop}]"

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.get().shape)  # type: ignore[return-value]

    def get(self) -> torch.Tensor:
        """A detached ``[out, in]`` view of the current weight (no copy when possible)."""
        w = self.param.detach()
        if self.rows is not None:
            w = w[self.rows]
        if self.kernel_shape is not None:
            w = w.reshape(w.shape[0], -1)
        return w.t() if self.transpose else w

    @torch.no_grad()
    def set(self, w2d: torch.Tensor) -> None:
        """Write a ``[out, in]`` matrix back in place (shape, dtype and device of the parameter are kept)."""
        expected = tuple(self.get().shape)
        if tuple(w2d.shape) != expected:
            raise ValueError(f"{self.key}: expected a {expected} matrix, got {tuple(w2d.shape)}")
        w = w2d.t() if self.transpose else w2d
        if self.kernel_shape is not None:
            w = w.reshape(self.kernel_shape)
        target = self.param.data if self.rows is None else self.param.data[self.rows]
        target.copy_(w.to(dtype=target.dtype, device=target.device))


@dataclass
class TowerOutput:
    """What the LoCoOp loss needs from the top of a tower.

    CLIP vision: ``global_`` = image embeddings ``[B, D]``, ``local`` = value-path patch embeddings ``[B, P, D]``
    (both projected, not normalised). CLIP text: ``global_`` = text embeddings ``[N, D]``, ``local`` None.
    Classifier vision: ``global_`` = logits ``[B, C]``, ``local`` = per-position logits ``[B, P, C]``
    (None when the architecture has none).
    """

    global_: torch.Tensor
    local: torch.Tensor | None = None


class Backbone:
    """Base class of every registered backbone.

    Subclasses set ``kind`` and ``capabilities`` and implement the methods below. ``model`` is the wrapped
    ``nn.Module``; it is kept in eval mode. Construction is ``Backbone(name, pretrained=None, **options)`` through
    the registry's factory (see :func:`oodbench.backbones.create_backbone`).

    Attributes:
        capabilities: names of :data:`CAPABILITIES` this class supports (class-level; an instance may narrow it
            when its wrapped architecture lacks one, e.g. a timm model without a block-wise adapter).
        family: one of :data:`FAMILIES`, or None for an architecture outside them (recorded by :meth:`describe`).
    """

    kind: ClassVar[str] = ""  # "clip" or "classifier"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, model: nn.Module, name: str, pretrained: str | None = None, *, family: str | None = None):
        if family is not None and family not in FAMILIES:
            raise ValueError(f"unknown backbone family '{family}'; known: {', '.join(FAMILIES)}")
        self.model = model.eval()
        self.name = name
        self.pretrained = pretrained
        self.family = family
        self.device = torch.device("cpu")
        self._weights_hash: str | None = None

    def fast_arithmetic(self) -> "contextlib.AbstractContextManager[None]":
        """A context in which the layer-wise calls may use a fused arithmetic, equal to the default to float32
        rounding, not bit for bit (capability ``fast_arithmetic``); the base class: the default arithmetic."""
        return contextlib.nullcontext()

    def require(self, capability: str, needed_by: str) -> None:
        """Raise :class:`~oodbench.errors.IncompatibleError` unless ``capability`` is declared."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability '{capability}'; known: {', '.join(CAPABILITIES)}")
        if capability not in self.capabilities:
            have = ", ".join(sorted(self.capabilities)) or "none"
            raise IncompatibleError(f"{needed_by} needs a backbone with '{capability}'; {self.name} has: {have}")

    def _missing(self, capability: str, method: str) -> IncompatibleError:
        return IncompatibleError(
            f"{self.name} ({type(self).__name__}) does not implement {method}: it lacks the '{capability}' capability"
        )

    # --------------------------------------------------------------------------------- description
    @property
    def provides(self) -> frozenset[str]:
        """Feature names (see :mod:`oodbench.features.featureset`) this backbone can produce."""
        raise NotImplementedError

    def preprocess(self) -> Callable:
        """Eval transform: PIL image -> float tensor ``[3, H, W]``."""
        raise NotImplementedError

    def preprocess_config(self) -> dict[str, Any]:
        """JSON-able description of :meth:`preprocess` (size, crop, interpolation, mean, std); part of cache keys."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """``{"name", "kind", "family", "pretrained", "weights_hash", ...}`` recorded in every result."""
        return {"name": self.name, "kind": self.kind, "family": self.family, "pretrained": self.pretrained,
                "weights_hash": self.weights_hash()}

    def weights_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the weights as loaded, computed once and remembered.

        A modifier changes the weights after this was taken; its plan hash is a separate part of every cache key.
        """
        if self._weights_hash is None:
            self._weights_hash = state_dict_hash(self.model.state_dict())
        return self._weights_hash

    def to(self, device: str | torch.device) -> "Backbone":
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    # ----------------------------------------------------------------------------------- features
    def compute_features(self, images: torch.Tensor, names: set[str]) -> dict[str, torch.Tensor]:
        """Per-sample arrays of ``names`` for a batch ``[B, 3, H, W]`` (already on ``self.device``)."""
        raise NotImplementedError

    def shared_features(self, names: set[str], class_names: list[str], prompt: str) -> dict[str, Any]:
        """Model-level entries of ``names`` (``text``, ``logit_scale``, ``fc_weight``, ``fc_bias``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ weights
    def weight_types(self) -> tuple[str, ...]:
        """The weight types :meth:`target_modules` supports (a subset of :data:`WEIGHT_TYPES`)."""
        return WEIGHT_TYPES

    def target_modules(self, weight_type: str, tower: str | None = None) -> list[TargetWeight]:
        """The weights of ``weight_type`` in ``tower`` (both towers when None), ordered by tower then layer."""
        raise NotImplementedError

    # --------------------------------------------------------------------------- layer-wise API
    def towers(self) -> dict[str, int]:
        """``{tower: number of blocks}``, e.g. ``{"vision": 12, "text": 12}`` (capability ``layerwise``)."""
        raise self._missing("layerwise", "towers()")

    def hidden(self, tower: str, inputs: torch.Tensor, layer: int) -> torch.Tensor:
        """Hidden state entering block ``layer`` of ``tower`` (``layer == num_layers`` gives the last block's output).

        ``inputs``: images ``[B, 3, H, W]`` for ``"vision"``, token ids ``[N, L]`` for ``"text"``. Capability
        ``layerwise``.
        """
        raise self._missing("layerwise", "hidden()")

    def forward_from(self, tower: str, hidden: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> TowerOutput:
        """Run blocks ``layer ..`` of ``tower`` on ``hidden`` and the heads. ``inputs`` as in :meth:`hidden`
        (the text tower needs the token ids to find the EOT position). Capability ``layerwise``."""
        raise self._missing("layerwise", "forward_from()")

    def hidden_from(self, tower: str, hidden: torch.Tensor, start: int, stop: int,
                    inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The state entering block ``stop`` (as :meth:`hidden` gives it) from ``hidden``, the state entering block
        ``start <= stop`` (capability ``layer_states``)."""
        raise self._missing("layer_states", "hidden_from()")

    def hidden_mlp(self, tower: str, hidden: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The state of block ``layer`` after its attention half, from the state ``hidden`` entering the block
        (capability ``mlp_stage``). Nothing a ``W_up`` / ``W_down`` candidate of block ``layer`` changes is in it."""
        raise self._missing("mlp_stage", "hidden_mlp()")

    def forward_from_mlp(self, tower: str, state: torch.Tensor, layer: int, inputs: torch.Tensor | None = None) -> TowerOutput:
        """Finish block ``layer`` from :meth:`hidden_mlp`'s ``state``, then as :meth:`forward_from` (capability
        ``mlp_stage``): ``forward_from_mlp(t, hidden_mlp(t, h, l, x), l, x) == forward_from(t, h, l, x)``."""
        raise self._missing("mlp_stage", "forward_from_mlp()")

    # ------------------------------------------------------------------------------------- text
    def text_encoder(self, batch_size: int = 256) -> Any:
        """An object with ``encode_text(list[str]) -> np.ndarray [N, D]`` and ``cache_key`` (capability
        ``text_encoder``); postprocessors that mine text (NegLabel) are given it."""
        raise self._missing("text_encoder", "text_encoder()")


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """Order-independent SHA-256 over parameter names, dtypes, shapes and bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
