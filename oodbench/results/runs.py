"""Find, list, describe and compare stored runs (the data behind ``oodbench runs list|show|compare``).

A run is named by its folder name (the run id), by a unique prefix of it, or by the path of its folder (or of
the folder's ``result.json``). Listing sorts by the time each run was stored, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.errors import UserError
from oodbench.results.store import ResultsStore, RunRecord

# `runs list` filter options -> the store's filter fields
FILTERS = {"benchmark": "benchmark", "backbone": "backbone", "method": "method", "post": "postprocessor"}


@dataclass(frozen=True)
class StoredRun:
    """One run folder: its record and where it lies."""

    record: RunRecord
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    def scores(self) -> dict[str, np.ndarray]:
        """Per-image scores, higher = ID: ``"id"`` and ``"ood/<name>"`` (empty when none were stored)."""
        return ResultsStore(self.path.parent).scores(self.path.name)


def find_run(store: ResultsStore, ref: str) -> StoredRun:
    """The run ``ref`` names: a run id, a unique prefix of one, or a run folder / ``result.json`` path.

    Raises:
        UserError: no such run, or a prefix shared by several runs.
    """
    ref = str(ref).strip()
    if not ref:
        raise UserError("empty run name; give a run id, a unique prefix of one, or a run folder")
    ids = store.run_ids()
    if ref in ids:
        return _load(store, ref)
    path = Path(ref).expanduser()
    if path.name == "result.json" and path.is_file():
        path = path.parent
    if (path / "result.json").is_file():
        return _load(ResultsStore(path.resolve().parent), path.resolve().name)
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return _load(store, matches[0])
    if not matches:
        raise UserError(f"unknown run '{ref}': no run id under {store.root} starts with it "
                        "(see `oodbench runs list`, or give a run folder path)")
    shown = ", ".join(matches[:4]) + (f", ... ({len(matches)} in all)" if len(matches) > 4 else "")
    raise UserError(f"run prefix '{ref}' is ambiguous: it matches {shown}; give more characters")


def _load(store: ResultsStore, run_id: str) -> StoredRun:
    try:
        record = store.load(run_id)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"run {store.root / run_id}: cannot read result.json ({type(exc).__name__}: {exc})") from None
    return StoredRun(record, store.root / run_id)


def list_runs(store: ResultsStore, limit: int | None = None, **filters: str | None) -> list[StoredRun]:
    """Stored runs matching ``filters`` (``benchmark``, ``backbone``, ``method``, ``post``; equality or shell
    wildcards), newest first (by stored time, then id), at most ``limit`` of them."""
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise UserError(f"cannot filter runs by {', '.join(sorted(unknown))}; use {', '.join(FILTERS)}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    wanted = {FILTERS[k]: v for k, v in filters.items() if v is not None}
    runs = [StoredRun(r, store.root / (r.run_id or "")) for r in store.runs(**wanted)]
    runs = [r for r in runs if r.record.run_id and r.path.is_dir()]
    runs.sort(key=lambda r: (r.record.time, r.run_id), reverse=True)
    return runs[:limit] if limit else runs


def average(record: RunRecord, metric: str) -> float | None:
    """The record's ``average`` row value of ``metric`` (a fraction), or None when it has none."""
    return record.metrics.get("average", {}).get(metric)


def stream_of(record: RunRecord) -> dict[str, Any] | None:
    """What a test-time score's run recorded about its stream protocol (``extra["stream"]``: seeds, batch size,
    per-order metrics ...), or None for a static score."""
    stream = (record.extra or {}).get("stream")
    return stream if isinstance(stream, dict) and isinstance(stream.get("per_order"), dict) else None


def is_test_time(record: RunRecord) -> bool:
    return stream_of(record) is not None


def protocol_text(record: RunRecord) -> str:
    """``"test-time: stream orders 0, 1, 2, batch 256"`` for a test-time run, ``""`` for a static one."""
    stream = stream_of(record)
    if stream is None:
        return ""
    seeds = stream.get("seeds") or list(stream["per_order"])
    return (f"test-time: stream orders {', '.join(str(s) for s in seeds)}, batch {stream.get('batch_size', '?')}")


def order_values(record: RunRecord, row: str, metric: str) -> list[float] | None:
    """The value of ``metric`` in row ``row`` (an OOD set or ``average``; ``fsood:<set>`` / ``fsood:average`` for the
    full-spectrum evaluation, whose streams a test-time score records apart) under each stream order of a test-time
    run, in the recorded order; None for a static run or when an order lacks it."""
    stream = stream_of(record)
    if row.startswith("fsood:"):
        row = row.removeprefix("fsood:")
        stream = (fsood_of(record) or {}).get("stream") if stream is not None else None
        if not isinstance(stream, dict) or not isinstance(stream.get("per_order"), dict):
            return None
    if stream is None or not stream["per_order"]:
        return None
    values = [(order or {}).get(row, {}).get(metric) for order in stream["per_order"].values()]
    return None if any(v is None for v in values) else [float(v) for v in values]


def order_std(record: RunRecord, row: str, metric: str) -> float | None:
    """Population std (``numpy.std``, ddof 0) of ``metric`` in ``row`` over the stream orders of a test-time run
    (a fraction), or None for a static run."""
    values = order_values(record, row, metric)
    return None if values is None else float(np.std(np.asarray(values, dtype=np.float64)))


def fsood_of(record: RunRecord) -> dict[str, Any] | None:
    """The full-spectrum evaluation of a run (``extra["fsood"]``: ``csid`` = {name: {n, accuracy}}, ``metrics`` =
    {OOD set or ``average``: {metric: value}}; OOD vs ID test and every covariate-shifted ID set), or None."""
    fs = (record.extra or {}).get("fsood")
    return fs if isinstance(fs, dict) and isinstance(fs.get("metrics"), dict) else None


def metric_value(record: RunRecord, row: str, metric: str) -> float | None:
    """A fraction from ``record``: ``row`` is an OOD set or ``average`` (the run's metrics), ``fsood:<set>`` or
    ``fsood:average`` (its full-spectrum metrics), ``csid:<set>`` (ID accuracy on a covariate-shifted ID set,
    ``metric`` ignored), ``classify:<split>`` / ``classify:average`` (the official Table 7 protocol,
    :mod:`oodbench.classify`; ``metric`` ignored) or ``id_accuracy``."""
    if row == "id_accuracy":
        return record.id_accuracy
    if row.startswith("classify:"):  # the official classification protocol (oodbench.classify)
        from oodbench.classify import classify_value

        return classify_value(record.extra, row.partition(":")[2])
    if row.startswith(("fsood:", "csid:")):
        fs = fsood_of(record)
        kind, _, name = row.partition(":")
        if fs is None:
            return None
        if kind == "csid":
            return ((fs.get("csid") or {}).get(name) or {}).get("accuracy")
        return (fs["metrics"].get(name) or {}).get(metric)
    return record.metrics.get(row, {}).get(metric)


def params_text(params: dict[str, Any] | None) -> str:
    """``{"temperature": 1.0}`` -> ``"temperature=1.0"`` (sorted by name)."""
    return ", ".join(f"{k}={v}" for k, v in sorted((params or {}).items()))


def describe(record: RunRecord) -> str:
    """``backbone / method / postprocessor (params)`` in one line."""
    params = params_text(record.postprocessor.get("params"))
    return (f"{record.backbone.get('name', '?')} / {record.method} / {record.postprocessor.get('name', '?')}"
            + (f" ({params})" if params else ""))


def ood_set_names(records: list[RunRecord]) -> list[str]:
    """OOD set names in first-seen order over ``records`` (``average`` left out)."""
    names: list[str] = []
    for r in records:
        for name in r.metrics:
            if name != "average" and name not in names:
                names.append(name)
    return names


@dataclass(frozen=True)
class CompareCell:
    value: float | None  # fraction, None when the run lacks the set
    diff: float | None  # value minus the first run's value (None for the first run or a missing value)


def compare(records: list[RunRecord], metrics: tuple[str, ...]) -> dict[str, list[dict[str, CompareCell]]]:
    """Side-by-side values per OOD set (and ``average``): ``{set: [ {metric: CompareCell} per run ]}``.

    Differences are to the first run, in the same units (fractions). Each run's ``average`` is its own stored
    average over its own OOD sets.
    """
    if len(records) < 2:
        raise UserError("compare needs at least two runs")
    out: dict[str, list[dict[str, CompareCell]]] = {}
    for name in ood_set_names(records) + ["average"]:
        base = records[0].metrics.get(name, {})
        row = []
        for i, r in enumerate(records):
            vals = r.metrics.get(name, {})
            cells = {}
            for m in metrics:
                v = vals.get(m)
                b = base.get(m)
                cells[m] = CompareCell(v, None if i == 0 or v is None or b is None else v - b)
            row.append(cells)
        out[name] = row
    return out


def method_title(rec) -> str:
    """The method's display name as recorded (``SeTAR+FT``), else the registered method's (an imported run records
    none), else its registry name."""
    if rec.plan.get("display_name"):
        return rec.plan["display_name"]
    from oodbench.method import method_class

    try:
        return method_class(rec.method).title()
    except Exception:  # not registered here
        return rec.method


def post_title(rec) -> str:
    """The score's display name as recorded (``GL-MCM``), else the registered score's, else its registry name."""
    name = rec.postprocessor.get("name", "")
    if rec.postprocessor.get("display_name"):
        return rec.postprocessor["display_name"]
    from oodbench.registry import get

    try:
        cls = get("postprocessors", name)
        return getattr(cls, "title", lambda: name)() or name
    except Exception:  # not registered here
        return name
