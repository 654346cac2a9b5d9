"""The arrays a postprocessor may ask for, for one split of one (backbone, plan, preprocessing, file list).

Per-sample arrays (first axis = sample, N):

==============  ===============  =====================================================================
name            shape            meaning
==============  ===============  =====================================================================
``labels``      [N] int64        ID class index; -1 for OOD samples
``image``       [N, D]           CLIP global image embedding (projected, *not* L2-normalised)
``local``       [N, P, D]        CLIP value-path local (patch) embeddings, projected, not normalised
``logits``      [N, C]           class logits. CLIP: ``logit_scale * cos(image, text)``; classifiers: the head
``penultimate`` [N, F]           pooled input of the last linear layer (classifiers)
``local_logits`` [N, P, C]       per-position logits (Swin value path / CNN per-position head)
==============  ===============  =====================================================================

Shared, model-level entries (do not depend on the sample):

==============  ===============  =====================================================================
``text``        [C, D]           CLIP text embeddings of the ID class prompts (not normalised)
``logit_scale`` float            ``logit_scale.exp()`` of the CLIP model (100 for OpenAI CLIP)
``fc_weight``   [C, F]           weight of the last linear layer (classifiers)
``fc_bias``     [C]              its bias
``class_names`` list[str]        ID class names, in label order
``prompt``      str              prompt template of the class texts, e.g. ``"a photo of a {}"``
==============  ===============  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

PER_SAMPLE = frozenset({"labels", "image", "local", "logits", "penultimate", "local_logits"})
SHARED = frozenset({"text", "logit_scale", "fc_weight", "fc_bias", "class_names", "prompt"})


@dataclass
class Features:
    """Arrays of one split. ``arrays`` are per-sample (same first dimension); ``shared`` are model-level.

    ``meta`` records how they were made (cache key, counts of images used and skipped with the skipped paths,
    precision, ...; see :func:`oodbench.features.extract.extract_features`).
    """

    arrays: dict[str, np.ndarray]
    shared: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"per-sample arrays of '{self.name}' differ in length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def __getitem__(self, key: str) -> Any:
        if key in self.arrays:
            return self.arrays[key]
        if key in self.shared:
            return self.shared[key]
        raise KeyError(f"feature '{key}' is not available for '{self.name}'; available: {', '.join(sorted(self.names()))}")

    def __contains__(self, key: str) -> bool:
        return key in self.arrays or key in self.shared

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def names(self) -> set[str]:
        return set(self.arrays) | set(self.shared)

    def missing(self, required: Iterable[str]) -> set[str]:
        return set(required) - self.names()

    def subset(self, index) -> "Features":
        """Rows ``index`` (slice, integer array or boolean mask) of every per-sample array; shared entries kept."""
        return Features({k: v[index] for k, v in self.arrays.items()}, dict(self.shared), self.name, dict(self.meta))

    @classmethod
    def concat(cls, parts: list["Features"], name: str = "") -> "Features":
        """Concatenate per-sample arrays of several feature sets that share the same ``shared`` entries."""
        if not parts:
            raise ValueError("nothing to concatenate")
        keys = set(parts[0].arrays)
        arrays = {k: np.concatenate([p.arrays[k] for p in parts]) for k in keys}
        return cls(arrays, dict(parts[0].shared), name or parts[0].name, dict(parts[0].meta))
