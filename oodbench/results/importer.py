"""Turn per-image score files written by other code into runs of the results store.

For example the official SeTAR code writes one ``scores_<set>.csv`` per split, negated so that higher = OOD; such
files are read with ``higher_is="ood"`` and converted at this boundary: the stored scores are higher = ID, and
the metrics are computed by :func:`oodbench.metrics.evaluate`, the same code every other run uses. The record
says it was imported, from which files (with their SHA-256) and in which orientation the files were.

Everything is read and checked before anything is written; the run folder then appears in one atomic step.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.benchmark import check_set_name
from oodbench.errors import UserError
from oodbench.hashing import hash_file
from oodbench.metrics import evaluate
from oodbench.results.store import ResultsStore, RunRecord
from oodbench.scorefiles import ORIENTATIONS, read_scores

GROUPS = ("near", "far")
DEFAULT_GROUP = "far"


def single_column_name(path: str | Path) -> str | None:
    """The name of the one score column of ``path`` (CSV header, npz key, structured-npy field), or None when the
    file does not name it (a plain ``.npy``) or holds several (the score-file reader reports that)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            with open(path, newline="", encoding="utf-8-sig") as fh:
                first = fh.readline()
            delimiter = "\t" if suffix == ".tsv" or ("\t" in first and "," not in first) else ","
            header = next(csv.reader([first], delimiter=delimiter), [])
            names = [h.strip() for h in header]
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
        elif suffix == ".npy":
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
            names = list(arr.dtype.names or ())
        else:
            return None
    except (OSError, ValueError, EOFError):
        return None
    return names[0] if len(names) == 1 else None


def import_run(
    store: ResultsStore,
    id_file: str | Path,
    ood_files: dict[str, str | Path],
    *,
    benchmark: str,
    backbone: str,
    method: str,
    postprocessor: str,
    column: str | None = None,
    higher_is: str = "id",
    groups: dict[str, str] | None = None,
    id_set: str | None = None,
    params: dict[str, Any] | None = None,
    pretrained: str | None = None,
    plan: dict[str, Any] | None = None,
    precision: str = "unknown",
    note: str = "",
) -> Path:
    """Read the score files, compute every metric and store one run; returns the new run folder.

    Args:
        store: where the run goes.
        id_file: scores of the ID test set (``.npy``, ``.npz``, ``.csv``/``.tsv`` with a header).
        ood_files: OOD set name -> score file.
        benchmark, backbone, method, postprocessor: what produced the scores (recorded; used by filters,
            tables and the leaderboard).
        column: CSV column / npz key to read in every file; without it each file must hold one score, and the
            ID and OOD files' column names (where they have names) must agree.
        higher_is: ``"id"`` or ``"ood"``: what larger values in the files mean (official SeTAR CSVs: ``"ood"``).
        groups: OOD set name -> ``"near"`` / ``"far"`` (default ``far``).
        id_set: name of the ID set (default: the ID file's name without suffix).
        params: postprocessor hyperparameters that produced the scores.
        pretrained: backbone weights tag or file, if known.
        plan: the modifier plan as JSON data (``entries`` etc.), if known; its ``name`` is ``method``.
        precision: the precision the other code ran at, if known.
        note: free text kept in the record.

    Raises:
        UserError: missing or unreadable file, missing column, disagreeing column names, bad names or groups,
            orientation not ``id``/``ood``. Nothing is written then.
    """
    if higher_is not in ORIENTATIONS:
        raise UserError(f"--higher-is must be 'id' or 'ood', got '{higher_is}'")
    for flag, value in (("--benchmark", benchmark), ("--backbone", backbone), ("--method", method),
                        ("--post", postprocessor)):
        if not value or not str(value).strip():
            raise UserError(f"{flag} must not be empty")
    if not ood_files:
        raise UserError("give at least one OOD set with --ood NAME=FILE")
    for name in ood_files:
        check_set_name(name, "--ood")
    groups = dict(groups or {})
    for name, group in groups.items():
        if name not in ood_files:
            raise UserError(f"--group {name}={group}: no OOD set '{name}' (given: {', '.join(ood_files)})")
        if group not in GROUPS:
            raise UserError(f"--group {name}={group}: the group must be near or far")
    id_path = Path(id_file)
    paths = {name: Path(p) for name, p in ood_files.items()}
    for p in [id_path, *paths.values()]:
        if not p.is_file():
            raise UserError(f"score file not found: {p}")
    if column is None:
        _check_same_column(id_path, paths)

    id_scores = read_scores(id_path, column, higher_is)
    ood_scores = {name: read_scores(p, column, higher_is) for name, p in paths.items()}
    rows = evaluate(id_scores, ood_scores)

    files = {"id": _describe_file(id_path), "ood": {name: _describe_file(p) for name, p in paths.items()}}
    record = RunRecord(
        benchmark=benchmark.strip(),
        id_set=id_set or id_path.stem,
        ood_sets={name: groups.get(name, DEFAULT_GROUP) for name in paths},
        backbone={"name": backbone.strip(), "pretrained": pretrained, "weights_hash": None},
        plan={**(plan or {}), "name": method.strip(), "hash": (plan or {}).get("hash")},
        postprocessor={"name": postprocessor.strip(), "params": dict(params or {}), "aps": None},
        metrics=rows,
        counts={"id": int(id_scores.size), "ood": {n: int(s.size) for n, s in ood_scores.items()}, "skipped": {}},
        precision=precision,
        device="",
        extra={"import": {
            "files": files,
            "column": column,
            "higher_is": higher_is,
            "orientation": ("file values negated at import: stored scores are higher = ID" if higher_is == "ood"
                            else "file values kept: already higher = ID"),
            "note": note,
        }},
    )
    scores = {"id": id_scores, **{f"ood/{n}": s for n, s in ood_scores.items()}}
    return store.save(record, scores)


def _check_same_column(id_path: Path, paths: dict[str, Path]) -> None:
    """Without ``--column``, the ID and OOD files must name their single score column alike (where named)."""
    named = {str(id_path): single_column_name(id_path)}
    named.update({str(p): single_column_name(p) for p in paths.values()})
    distinct = {n for n in named.values() if n is not None}
    if len(distinct) > 1:
        shown = ", ".join(f"{Path(f).name}: '{n}'" for f, n in named.items() if n is not None)
        raise UserError(f"the score files name their columns differently ({shown}); "
                        "say which column to read with --column")


def _describe_file(path: Path) -> dict[str, str]:
    return {"path": str(path.resolve()), "sha256": hash_file(path)}


def is_imported(record: RunRecord) -> bool:
    return "import" in (record.extra or {})
