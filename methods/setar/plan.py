"""SeTAR plans: which weights get which rank reduction, as JSON data with a content hash.

Paper: Li et al., SeTAR, NeurIPS 2024 (Sec. 3.1). Original code: X1AOX1A/SeTAR ``search.py`` writes the accepted
``lora_settings`` (``[[tower, weight_type, layer, ratio], ...]``) into ``config_best.json``.

A plan file looks like::

    {"format": "oodbench-setar-plan", "version": 1,
     "entries": [{"tower": "vision", "weight_type": "W_up", "layer": 11, "ratio": 0.15}, ...],
     "prune": "minor", "seed": 5,
     "search": {"searcher": "setar-s", "lambda": 0.1, "top_k": 300, ...},
     "hash": "3f2a..."}

The hash covers only what determines the modified weights: the entries with ``ratio > 0`` (order-free),
the prune strategy, and the seed when the prune strategy is ``random``. A plan that modifies nothing hashes to
``"none"``, the same key as the unmodified model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from oodbench import atomic
from oodbench.backbones.base import WEIGHT_TYPES
from oodbench.errors import UserError
from oodbench.hashing import hash_json

from .lowrank import PRUNE_STRATEGIES

PLAN_FORMAT = "oodbench-setar-plan"
PLAN_VERSION = 1
NONE_HASH = "none"
_TOWER_ALIASES = {"vision": "vision", "visual": "vision", "image": "vision", "text": "text"}


@dataclass(frozen=True)
class PlanEntry:
    """One weight and its rank reduction ratio.

    Attributes:
        tower: ``"vision"`` or ``"text"``.
        weight_type: one of ``W_q W_k W_v W_o W_up W_down W_p``.
        layer: block index in the tower (0 = bottom), ``-1`` for the projection ``W_p``.
        ratio: fraction of singular components removed (``0`` = untouched, ``>= 1`` = absolute rank).
    """

    tower: str
    weight_type: str
    layer: int
    ratio: float

    @property
    def target(self) -> tuple[str, str, int]:
        return (self.tower, self.weight_type, self.layer)

    def to_dict(self) -> dict[str, Any]:
        return {"tower": self.tower, "weight_type": self.weight_type, "layer": self.layer, "ratio": self.ratio}


@dataclass
class Plan:
    """A list of :class:`PlanEntry` plus how the weights are cut.

    Attributes:
        entries: in the order they were searched (ratio-0 entries kept: they document the search).
        prune: ``"minor"`` (SeTAR), ``"principal"`` or ``"random"``.
        seed: seed of the ``random`` prune strategy (and of the search that produced the plan).
        search: the search settings that produced the plan (free-form, JSON-able; not hashed).
    """

    entries: list[PlanEntry] = field(default_factory=list)
    prune: str = "minor"
    seed: int = 5
    search: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.entries = [_check_entry(e, i) for i, e in enumerate(self.entries)]
        if self.prune not in PRUNE_STRATEGIES:
            raise UserError(f"plan: unknown prune strategy '{self.prune}'; choose one of {', '.join(PRUNE_STRATEGIES)}")
        seen: set[tuple[str, str, int]] = set()
        for e in self.entries:
            if e.target in seen:
                raise UserError(f"plan: {e.tower} {e.weight_type} layer {e.layer} appears twice; keep one entry per weight")
            seen.add(e.target)

    # ------------------------------------------------------------------------------------------ views
    @property
    def active(self) -> list[PlanEntry]:
        """Entries that change a weight (``ratio > 0``)."""
        return [e for e in self.entries if e.ratio > 0]

    def ratios(self) -> dict[tuple[str, str, int], float]:
        return {e.target: e.ratio for e in self.entries}

    def hash(self) -> str:
        """16 hex digits over the active entries (sorted), the prune strategy and, for ``random``, the seed;
        ``"none"`` when nothing is modified."""
        active = sorted((e.tower, e.weight_type, e.layer, float(e.ratio)) for e in self.active)
        if not active:
            return NONE_HASH
        payload: dict[str, Any] = {"entries": active, "prune": self.prune}
        if self.prune == "random":
            payload["seed"] = int(self.seed)
        return hash_json(payload, 16)

    def prefix(self, steps: int, **search_info: Any) -> "Plan":
        """The plan of the first ``steps`` entries (a search stopped after that many steps; paper Figs. 2-3);
        ``search_info`` is added to its ``search`` record."""
        return Plan(list(self.entries[:steps]), self.prune, self.seed, {**self.search, **search_info})

    def with_entry(self, entry: PlanEntry) -> "Plan":
        """A copy with ``entry`` appended (replacing an entry for the same weight)."""
        kept = [e for e in self.entries if e.target != entry.target]
        return Plan(kept + [entry], self.prune, self.seed, dict(self.search))

    def describe(self) -> str:
        """Short human-readable form: ``v11:.15 v10:.15 t6:.25`` (active entries only)."""
        parts = [f"{e.tower[0]}{'' if e.weight_type == 'W_up' else e.weight_type}{e.layer if e.layer >= 0 else 'p'}:{e.ratio:g}" for e in self.active]
        return " ".join(parts) or "(no weight modified)"

    # ------------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "entries": [e.to_dict() for e in self.entries],
            "prune": self.prune,
            "seed": self.seed,
            "search": self.search,
            "hash": self.hash(),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> "Plan":
        """Build from :meth:`to_dict` output, or from the official ``[[tower, weight_type, layer, ratio], ...]``
        list (``"visual"`` is read as ``"vision"``). Malformed input raises a one-line :class:`UserError`."""
        if isinstance(data, list):
            data = {"entries": data}
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a JSON object with 'entries', got {type(data).__name__}")
        if "format" in data and data["format"] != PLAN_FORMAT:
            raise UserError(f"{source}: not a SeTAR plan (format '{data['format']}', expected '{PLAN_FORMAT}')")
        if "version" in data and data["version"] != PLAN_VERSION:
            raise UserError(f"{source}: plan version {data['version']} is not supported (expected {PLAN_VERSION})")
        raw = data.get("entries")
        if not isinstance(raw, list):
            raise UserError(f"{source}: 'entries' must be a list of {{tower, weight_type, layer, ratio}}")
        entries = [parse_entry(item, i, source) for i, item in enumerate(raw)]
        prune = data.get("prune", "minor")
        seed = data.get("seed", 5)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise UserError(f"{source}: 'seed' must be an integer, got {seed!r}")
        search = data.get("search", {})
        if not isinstance(search, dict):
            raise UserError(f"{source}: 'search' must be an object")
        try:
            plan = cls(entries, str(prune), seed, dict(search))
        except UserError as exc:
            raise UserError(f"{source}: {str(exc).removeprefix('plan: ')}") from None
        if "hash" in data and data["hash"] != plan.hash():
            raise UserError(f"{source}: stored hash {data['hash']} does not match the entries ({plan.hash()}); the file was edited — delete the 'hash' field to accept it")
        return plan

    def save(self, path: str | Path) -> Path:
        """Write the plan as indented JSON (parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        """Read a plan file; a missing, unreadable or malformed file raises a one-line :class:`UserError`."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"plan file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read plan file {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"plan file {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        return cls.from_dict(data, source=f"plan file {path}")

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, int, float]], prune: str = "minor", seed: int = 5) -> "Plan":
        return cls([PlanEntry(*e) for e in entries], prune, seed)


def parse_entry(item: Any, index: int, source: str) -> PlanEntry:
    if isinstance(item, (list, tuple)):
        if len(item) != 4:
            raise UserError(f"{source}: entry {index} must be [tower, weight_type, layer, ratio], got {item!r}")
        item = dict(zip(("tower", "weight_type", "layer", "ratio"), item))
    if not isinstance(item, dict):
        raise UserError(f"{source}: entry {index} must be an object {{tower, weight_type, layer, ratio}}, got {item!r}")
    missing = [k for k in ("tower", "weight_type", "ratio") if k not in item]
    if missing:
        raise UserError(f"{source}: entry {index} lacks {', '.join(missing)}")
    layer = item.get("layer", -1)
    if layer is None:  # the official W_p entries carry no layer
        layer = -1
    try:
        return _check_entry(PlanEntry(item["tower"], item["weight_type"], layer, item["ratio"]), index)
    except UserError as exc:
        raise UserError(f"{source}: {str(exc).removeprefix('plan: ')}") from None


def _check_entry(e: PlanEntry, index: int) -> PlanEntry:
    tower = _TOWER_ALIASES.get(str(e.tower).lower()) if isinstance(e.tower, str) else None
    if tower is None:
        raise UserError(f"plan: entry {index}: unknown tower {e.tower!r}; use vision or text")
    if e.weight_type not in WEIGHT_TYPES:
        raise UserError(f"plan: entry {index}: unknown weight type {e.weight_type!r}; use one of {', '.join(WEIGHT_TYPES)}")
    if not isinstance(e.layer, int) or isinstance(e.layer, bool) or e.layer < -1:
        raise UserError(f"plan: entry {index}: layer must be an integer >= 0 (or -1 for W_p), got {e.layer!r}")
    if (e.weight_type == "W_p") != (e.layer == -1):
        raise UserError(f"plan: entry {index}: W_p takes layer -1 and the other weight types a block index >= 0")
    if not isinstance(e.ratio, (int, float)) or isinstance(e.ratio, bool) or not 0 <= e.ratio < math.inf:
        raise UserError(f"plan: entry {index}: ratio must be a number >= 0, got {e.ratio!r}")
    if e.ratio >= 1 and float(e.ratio) != int(e.ratio):
        raise UserError(f"plan: entry {index}: a ratio >= 1 is an absolute rank and must be whole, got {e.ratio}")
    ratio = float(e.ratio) if e.ratio < 1 else int(e.ratio)
    if tower == e.tower and ratio == e.ratio and type(ratio) is type(e.ratio):
        return e
    return PlanEntry(tower, e.weight_type, e.layer, ratio)
