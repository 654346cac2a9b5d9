"""Settings of a SeTAR search (:class:`SearchConfig`) and the names the command line offers.

Torch-free, so that ``oodbench search --help`` and ``oodbench run --help`` build their option groups without
importing a model library; :mod:`.search` runs the search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from oodbench.errors import UserError

from .presets import DEFAULT_RATIOS, DEFAULT_SEED, OFFICIAL_BATCH

#: Which singular components a cut removes (:mod:`.lowrank`).
PRUNE_STRATEGIES = ("minor", "principal", "random")
SEARCHERS = ("setar-s", "mis", "les")
MODALITIES = ("both", "vision", "text")
METRICS = ("locoop_loss", "loss_id", "loss_ood")
_SEARCHER_ALIASES = {"setar-s": "setar-s", "setar_s": "setar-s", "setars": "setar-s", "visual_text": "setar-s",
                     "mis": "mis", "modality_interleaved": "mis", "les": "les", "layer_exhaustive": "les"}


@dataclass
class SearchConfig:
    """Settings of one search.

    Attributes:
        searcher: ``"setar-s"`` (default), ``"mis"`` or ``"les"``.
        weight_type: the weight searched in every block (``W_up`` in every reported run).
        modality: ``"both"``, ``"vision"`` or ``"text"`` (classifiers: vision).
        ratios: candidate rank reduction ratios, in evaluation order.
        lam: LoCoOp lambda (the OOD term's weight).
        top_k: K of the ground-truth top-K patch mask (0: every patch counts as OOD, as in the official code).
        batch_size: batch size of the loss aggregation (512 officially; 384 for Swin).
        prune: ``"minor"`` (SeTAR), ``"principal"`` or ``"random"``.
        seed: seed of the random prune strategy.
        include_projection: also search the projections ``W_p`` (before each tower's blocks); off in SeTAR.
        metric: what is minimised: ``locoop_loss`` (default), ``loss_id`` or ``loss_ood``.
        forward_batch_size: images per forward chunk (memory only; it does not change the loss).
        text_batch_size: prompts per text forward chunk.
    """

    searcher: str = "setar-s"
    weight_type: str = "W_up"
    modality: str = "both"
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    lam: float = 0.10
    top_k: int = 300
    batch_size: int = OFFICIAL_BATCH
    prune: str = "minor"
    seed: int = DEFAULT_SEED
    include_projection: bool = False
    metric: str = "locoop_loss"
    forward_batch_size: int = 256
    text_batch_size: int = 256

    def __post_init__(self) -> None:
        s = _SEARCHER_ALIASES.get(str(self.searcher).lower())
        if s is None:
            raise UserError(f"unknown searcher '{self.searcher}'; choose one of {', '.join(SEARCHERS)}")
        self.searcher = s
        if self.modality not in MODALITIES:
            raise UserError(f"unknown modality '{self.modality}'; choose one of {', '.join(MODALITIES)}")
        if self.prune not in PRUNE_STRATEGIES:
            raise UserError(f"unknown prune strategy '{self.prune}'; choose one of {', '.join(PRUNE_STRATEGIES)}")
        if self.metric not in METRICS:
            raise UserError(f"unknown search metric '{self.metric}'; choose one of {', '.join(METRICS)}")
        self.ratios = tuple(float(r) for r in self.ratios)
        if not self.ratios:
            raise UserError("the list of candidate ratios is empty")
        if any(not 0 <= r < 1 for r in self.ratios):
            raise UserError(f"candidate ratios must lie in [0, 1), got {list(self.ratios)}")
        if self.lam < 0:
            raise UserError(f"--lambda must be >= 0, got {self.lam}")
        if self.top_k < 0:
            raise UserError(f"--topk must be >= 0, got {self.top_k}")
        for name in ("batch_size", "forward_batch_size", "text_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        d["lambda"] = d.pop("lam")
        return d
