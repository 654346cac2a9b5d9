"""SeTAR: training-free OOD detection by selective low-rank approximation of weights.

Paper: Li et al., "SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation", NeurIPS 2024.
Original code: https://github.com/X1AOX1A/SeTAR.

Public API:

* :mod:`.lowrank` — ratio -> removed rank, SVD factors, truncation, the removed (LoRA-style) factors;
* :mod:`.plan` — :class:`Plan` / :class:`PlanEntry` (JSON, hash);
* :mod:`.modifier` — the registered modifier ``setar``;
* :mod:`.method` — the registered method ``setar`` (plan from ``--plan`` or a cached search);
* :mod:`.loss` — the LoCoOp loss as the official search computes it;
* :mod:`.search` — :func:`.search.search` (SeTAR-S, MIS, LES) with :class:`SearchConfig` (:mod:`.config`);
* :mod:`.presets` — the published (lambda, K, batch size) per backbone and benchmark.
"""

from importlib import import_module

# Name -> submodule. Imported on first use, so that importing the method (for `--help`) imports no torch.
_EXPORTS = {
    "LossResult": "loss", "locoop_loss_clip": "loss", "locoop_loss_logits": "loss",
    "SVDFactors": "lowrank", "kept_rank": "lowrank", "removed_factors": "lowrank", "removed_rank": "lowrank",
    "truncated_weight": "lowrank", "SetarMethod": "method", "SetarModifier": "modifier", "find_target": "modifier",
    "Plan": "plan", "PlanEntry": "plan", "DEFAULT_RATIOS": "presets", "Preset": "presets",
    "search_preset": "presets", "SearchConfig": "config", "SearchResult": "search", "search_order": "search",
    "SearchLog": "searchlog",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
