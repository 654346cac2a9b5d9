"""The record of a SeTAR search: one row per step (the running best, official columns) and one per candidate;
and the checkpoint of an unfinished search.

Original code: X1AOX1A/SeTAR ``src/svd_ood/svd_ood/utils/search_utils.py`` (``search_best_results.csv`` with
``step, tower_type, weight_type, layer_num, best_ratio, locoop_loss*, loss_id, loss_ood, acc, ood_patch_percent``
and ``search_results.json`` with every candidate's losses).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .loss import LossResult

log = logging.getLogger("oodbench")

STEP_COLUMNS = ("step", "tower", "weight_type", "layer", "best_ratio", "locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent")
CANDIDATE_COLUMNS = ("step", "tower", "weight_type", "layer", "ratio", "removed_rank", "locoop_loss", "loss_id", "loss_ood",
                     "acc", "ood_patch_percent", "computed", "best_so_far", "seconds")


@dataclass
class StepRecord:
    """The accepted setting of one step and the global best metrics after it (official ``search_best_results``)."""

    step: int
    tower: str
    weight_type: str
    layer: int
    best_ratio: float
    locoop_loss: float
    loss_id: float
    loss_ood: float
    acc: float
    ood_patch_percent: float


@dataclass
class CandidateRecord:
    """One evaluated (weight, ratio) candidate.

    ``computed`` is False when the loss was obtained without a forward pass (a candidate that removes no
    component leaves the model as the accepted configuration, whose loss is known). ``best_so_far`` marks a
    candidate that strictly improved the global best when it was evaluated; ``seconds`` is its evaluation time.
    """

    step: int
    tower: str
    weight_type: str
    layer: int
    ratio: float
    removed_rank: int
    locoop_loss: float
    loss_id: float
    loss_ood: float
    acc: float
    ood_patch_percent: float
    computed: bool = True
    best_so_far: bool = False
    seconds: float = 0.0


@dataclass
class SearchLog:
    """Steps, candidates, timing and the settings of one search.

    ``efficiency`` (CLIP): the FLOPs of the work an exact search cannot avoid, the FLOP/s achieved on it, and, for a
    search long enough that timing a GEMM costs little, the device's fp32 matmul rate and the fraction of it achieved
    (:mod:`oodbench.methods.setar.efficiency`).
    """

    steps: list[StepRecord] = field(default_factory=list)
    candidates: list[CandidateRecord] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    efficiency: dict[str, Any] = field(default_factory=dict)

    def add_candidate(self, step: int, target: tuple[str, str, int], ratio: float, removed: int, result: LossResult,
                      computed: bool, best: bool, seconds: float = 0.0) -> None:
        self.candidates.append(CandidateRecord(step, *target, ratio, removed, **result.to_dict(), computed=computed,
                                               best_so_far=best, seconds=seconds))

    def add_step(self, step: int, target: tuple[str, str, int], ratio: float, best: LossResult) -> None:
        self.steps.append(StepRecord(step, *target, ratio, **best.to_dict()))

    @property
    def n_computed(self) -> int:
        return sum(c.computed for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "seconds": self.seconds,
            "efficiency": self.efficiency,
            "steps": [asdict(s) for s in self.steps],
            "candidates": [asdict(c) for c in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchLog":
        return cls([StepRecord(**s) for s in data["steps"]], [CandidateRecord(**c) for c in data["candidates"]],
                   float(data.get("seconds", 0.0)), dict(data.get("settings", {})), dict(data.get("efficiency") or {}))

    def save(self, directory: str | Path, prefix: str = "search") -> dict[str, Path]:
        """Write ``<prefix>_steps.csv``, ``<prefix>_candidates.csv`` and ``<prefix>_log.json`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"steps_csv": out / f"{prefix}_steps.csv", "candidates_csv": out / f"{prefix}_candidates.csv",
                 "log_json": out / f"{prefix}_log.json"}
        _write_csv(paths["steps_csv"], STEP_COLUMNS, [asdict(s) for s in self.steps])
        _write_csv(paths["candidates_csv"], CANDIDATE_COLUMNS, [asdict(c) for c in self.candidates])
        paths["log_json"].write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return paths

    def table(self) -> str:
        """The step rows as fixed-width text (like the official ``search.log``)."""
        head = f"{'step':>4} {'tower':<6} {'weight':<6} {'layer':>5} {'ratio':>5} {'loss':>9} {'loss_id':>9} {'loss_ood':>9} {'acc':>7} {'ood%':>7}"
        rows = [head] + [
            f"{s.step:>4} {s.tower:<6} {s.weight_type:<6} {s.layer:>5} {s.best_ratio:>5.2f} {s.locoop_loss:>9.6f} "
            f"{s.loss_id:>9.6f} {s.loss_ood:>9.6f} {s.acc:>7.2f} {s.ood_patch_percent:>7.2f}"
            for s in self.steps
        ]
        return "\n".join(rows)


Target = tuple[str, str, int]

#: Version of the checkpoint format; a checkpoint of another version is ignored (the search starts over).
CHECKPOINT_VERSION = 1


@dataclass
class SearchState:
    """A search after its last finished step: what :func:`~oodbench.methods.setar.search.greedy` needs to go on.

    Attributes:
        accepted: the (target, ratio) accepted by each finished step, in step order.
        best: the global best loss so far (the acceptance rule compares every later candidate with it).
        log: the steps and candidates so far.
        forward_passes: forward passes run so far; seconds: search time so far.
    """

    accepted: list[tuple[Target, float]]
    best: "LossResult"
    log: SearchLog
    forward_passes: int = 0
    seconds: float = 0.0

    @property
    def steps_done(self) -> int:
        return len(self.accepted)


class SearchCheckpoint:
    """The finished steps of a search, saved atomically to ``<folder>/state.json`` after each step.

    A checkpoint is used only by a search with the same settings and the same order of searched weights (both
    stored in it); any other one is ignored and overwritten. The caller keys the folder by every ingredient of
    the search (``SetarMethod`` uses ``<cache>/plans/<key>.partial/``), so a changed setting never reaches it.
    """

    FILE = "state.json"

    def __init__(self, folder: str | Path, settings: dict[str, Any], order: list[Target]):
        self.folder = Path(folder)
        self.identity = {"version": CHECKPOINT_VERSION, "settings": _jsonable(settings),
                         "order": [list(t) for t in order]}

    @property
    def path(self) -> Path:
        return self.folder / self.FILE

    def load(self) -> SearchState | None:
        """The saved state, or None when there is none or it belongs to another search (a warning says why)."""
        from .loss import LossResult

        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
            if {k: data.get(k) for k in self.identity} != self.identity:
                log.warning("search checkpoint %s belongs to other settings; starting over", self.path)
                return None
            accepted = [((t[0], t[1], int(t[2])), float(r)) for t, r in data["accepted"]]
            return SearchState(accepted, LossResult(**data["best"]), SearchLog.from_dict(data["log"]),
                               int(data["forward_passes"]), float(data["seconds"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("search checkpoint %s is unreadable (%s); starting over", self.path, exc)
            return None

    def save(self, state: SearchState) -> None:
        from oodbench import atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self.path, {**self.identity, "accepted": [[list(t), r] for t, r in state.accepted],
                                      "best": state.best.to_dict(), "log": state.log.to_dict(),
                                      "forward_passes": state.forward_passes, "seconds": state.seconds}, indent=None)


def _jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), so saved and current settings compare equal."""
    return json.loads(json.dumps(obj, default=str))


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in columns})


assert tuple(f.name for f in fields(StepRecord)) == STEP_COLUMNS
assert tuple(f.name for f in fields(CandidateRecord)) == CANDIDATE_COLUMNS
