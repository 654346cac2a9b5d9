"""SeTAR: training-free OOD detection by selective low-rank approximation of weights.

Paper: Li et al., "SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation", NeurIPS 2024.
Original code: https://github.com/X1AOX1A/SeTAR.

Public API:

* :mod:`.lowrank` — ratio -> removed rank, SVD factors, truncation, the removed (LoRA-style) factors;
* :mod:`.plan` — :class:`Plan` / :class:`PlanEntry` (JSON, hash);
* :mod:`.modifier` — the registered modifier ``setar``;
* :mod:`.method` — the registered method ``setar`` (plan from ``--plan`` or a cached search);
* :mod:`.loss` — the LoCoOp loss as the official search computes it;
* :mod:`.search` — :func:`search` (SeTAR-S, MIS, LES) with :class:`SearchConfig`;
* :mod:`.presets` — the published (lambda, K, batch size) per backbone and benchmark.
"""

from .loss import LossResult, locoop_loss_clip, locoop_loss_logits
from .lowrank import SVDFactors, kept_rank, removed_factors, removed_rank, truncated_weight
from .method import SetarMethod
from .modifier import SetarModifier, find_target
from .plan import Plan, PlanEntry
from .presets import DEFAULT_RATIOS, Preset, search_preset
from .search import SearchConfig, SearchResult, search, search_order
from .searchlog import SearchLog

__all__ = [
    "DEFAULT_RATIOS", "LossResult", "Plan", "PlanEntry", "Preset", "SVDFactors", "SearchConfig",
    "SearchLog", "SearchResult", "SetarMethod", "SetarModifier", "find_target", "kept_rank", "locoop_loss_clip",
    "locoop_loss_logits", "removed_factors", "removed_rank", "search", "search_order", "search_preset",
    "truncated_weight",
]
