"""The record of a SeTAR search: one row per step (the running best, official columns) and one per candidate.

Original code: X1AOX1A/SeTAR ``src/svd_ood/svd_ood/utils/search_utils.py`` (``search_best_results.csv`` with
``step, tower_type, weight_type, layer_num, best_ratio, locoop_loss*, loss_id, loss_ood, acc, ood_patch_percent``
and ``search_results.json`` with every candidate's losses).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .loss import LossResult

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
    """Steps, candidates, timing and the settings of one search."""

    steps: list[StepRecord] = field(default_factory=list)
    candidates: list[CandidateRecord] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

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
            "steps": [asdict(s) for s in self.steps],
            "candidates": [asdict(c) for c in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchLog":
        return cls([StepRecord(**s) for s in data["steps"]], [CandidateRecord(**c) for c in data["candidates"]],
                   float(data.get("seconds", 0.0)), dict(data.get("settings", {})))

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


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in columns})


assert tuple(f.name for f in fields(StepRecord)) == STEP_COLUMNS
assert tuple(f.name for f in fields(CandidateRecord)) == CANDIDATE_COLUMNS
