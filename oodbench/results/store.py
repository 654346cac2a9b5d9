"""The results store: one folder per run under a results root.

Layout::

    <results-root>/
      20261122-101530-digits-test_clip_tiny-mcm-3f9a1c/
        result.json     every field of RunRecord (what ran, on what, how, and the metrics)
        scores.npz      per-image scores, higher = ID: "id" and "ood/<name>" arrays

A run folder is first written under a hidden temporary name and then renamed in one step, so a reader
never sees half a run and an interrupted write leaves nothing behind but a ``.tmp-*`` folder that
:meth:`ResultsStore.runs` ignores. A run folder whose ``result.json`` cannot be read as a run (truncated, not
JSON, a required field missing, a metric that is not a number) is left out of :meth:`ResultsStore.runs` with a
warning naming it, and :meth:`ResultsStore.unreadable` lists such folders (``oodbench runs list --check``).

Run ids (folder names) are ``<time>-<benchmark>-<backbone>-<method>-<postprocessor>-<digest>``, each name cut to
:data:`ID_PART_MAX` characters of ``A-Z a-z 0-9 _ . + -`` (anything else becomes ``_``; a long name keeps its
start and end), so an id is at most ~130 characters and safe in every file system and shell.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import logging
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from oodbench import atomic
from oodbench.version import __version__
from oodbench.hashing import hash_json
from oodbench.metrics import CONVENTIONS

SCHEMA = "oodbench.result/1"
#: Longest name part of a run id (benchmark, backbone, method, postprocessor), in characters.
ID_PART_MAX = 24
_ID_CHARS = re.compile(r"[^A-Za-z0-9_.+-]+")
#: Fields every stored record has, with their JSON types.
_REQUIRED = {"benchmark": str, "id_set": str, "ood_sets": dict, "backbone": dict, "plan": dict,
             "postprocessor": dict, "metrics": dict, "counts": dict}
log = logging.getLogger("oodbench")


@dataclass
class RunRecord:
    """Everything one evaluated (backbone, plan, postprocessor, benchmark) run records.

    ``metrics`` maps each OOD set name (and ``"average"``) to ``{metric: value in [0, 1]}``.
    """

    benchmark: str
    id_set: str
    ood_sets: dict[str, str]  # OOD set name -> group ("near" / "far")
    backbone: dict[str, Any]  # name, pretrained, weights_hash
    plan: dict[str, Any]  # modifier name, hash, entries (empty for "none")
    postprocessor: dict[str, Any]  # name, params (after APS), aps (grid and choice, if any)
    metrics: dict[str, dict[str, float]]
    counts: dict[str, Any]  # {"id": n, "ood": {name: n}, "skipped": {split: n}}
    precision: str = "fp32"
    id_accuracy: float | None = None
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))
    code_version: str = ""
    time: str = ""
    seed: int | None = None
    device: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # oodbench.provenance.provenance(): code, libraries, CPU
    schema: str = SCHEMA
    run_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def method(self) -> str:
        return self.plan.get("name", "none")


class ResultsStore:
    """Write and read runs under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        #: ``(run id, reason)`` of the unreadable run folders the last :meth:`runs` left out.
        self.left_out: list[tuple[str, str]] = []
        self._identity_index: dict[str, str] | None = None

    def save(self, record: RunRecord, scores: dict[str, np.ndarray] | None = None, reuse: bool = False) -> Path:
        """Write ``record`` (and per-image ``scores``) as a new run folder and return its path.

        ``scores`` keys: ``"id"`` and ``"ood/<name>"``; values 1-D arrays, higher = ID.

        With ``reuse`` (sweeps and ``oodbench tables``), a stored run with the same :func:`run_identity` — the same
        settings, data, counts and metrics; only the time, run id, code version and timings may differ — is
        returned instead of storing a duplicate (``record`` then takes its run id and time).
        """
        if reuse:
            found = self._identities().get(run_identity(record))
            if found is not None and (self.root / found / "result.json").is_file():
                stored = self.load(found)
                record.run_id, record.time, record.code_version = stored.run_id, stored.time, stored.code_version
                record.provenance = stored.provenance
                log.info("reused the stored run %s (same settings and metrics)", found)
                return self.root / found
        record.time = record.time or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        record.code_version = record.code_version or code_version()
        record.run_id = record.run_id or self._new_id(record)
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / record.run_id
        if final.exists():
            raise FileExistsError(f"run folder already exists: {final}")
        with atomic.folder(final, replace=False) as tmp:
            atomic.write_text(tmp / "result.json",
                              json.dumps(record.to_json(), indent=2, sort_keys=False, default=_json_default) + "\n")
            if scores:
                atomic.write_bytes(tmp / "scores.npz", lambda f: np.savez_compressed(
                    f, **{k: np.asarray(v) for k, v in scores.items()}))
        if self._identity_index is not None:
            self._identity_index[run_identity(record)] = record.run_id
        return final

    def _identities(self) -> dict[str, str]:
        """:func:`run_identity` -> run id of every readable stored run (built once per store object)."""
        if self._identity_index is None:
            self._identity_index = {}
            for rec in self._iter():
                self._identity_index.setdefault(run_identity(rec), rec.run_id)
        return self._identity_index

    def load(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``.

        Raises:
            OSError: no readable ``result.json``.
            ValueError: not JSON, or not a run record (:func:`check_record` says why).
        """
        with open(self.root / run_id / "result.json", encoding="utf-8") as fh:
            data = json.load(fh)
        check_record(data)
        record = RunRecord.from_json(data)
        record.run_id = Path(run_id).name  # the folder name is the id (a copied or renamed folder stays listed)
        return record

    def unreadable(self) -> list[tuple[str, str]]:
        """``(run id, reason)`` of every run folder (one holding a ``result.json``) that :meth:`load` refuses."""
        bad = []
        for run_id in self.run_ids():
            try:
                self.load(run_id)
            except (OSError, ValueError, TypeError) as exc:
                bad.append((run_id, _reason(exc)))
        return bad

    def scores(self, run_id: str) -> dict[str, np.ndarray]:
        """The run's per-image scores (empty when it stored none).

        Raises:
            UserError: ``scores.npz`` is truncated or not an npz archive (one line naming the file).
        """
        from oodbench.errors import UserError

        path = self.root / run_id / "scores.npz"
        if not path.exists():
            return {}
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise UserError(f"{path}: unreadable per-image scores ({type(exc).__name__}: {exc}); the run's metrics in "
                            "result.json are intact, its plots and score-based views are not") from None

    def run_ids(self) -> list[str]:
        """Names of the complete run folders (those holding a ``result.json``), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir()
                      if not d.name.startswith(".") and (d / "result.json").is_file())

    def runs(self, **filters: str) -> list[RunRecord]:
        """Stored runs, oldest first, filtered by equality or shell wildcard on
        ``benchmark``, ``backbone`` (name), ``postprocessor`` (name), ``method`` (plan name), ``id_set``."""
        return [r for r in self._iter() if _matches(r, filters)]

    def _iter(self) -> Iterator[RunRecord]:
        self.left_out = []
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            if d.name.startswith(".") or not (d / "result.json").is_file():
                continue
            try:
                yield self.load(d.name)
            except (OSError, ValueError, TypeError) as exc:
                self.left_out.append((d.name, _reason(exc)))
                log.warning("run %s left out, unreadable: %s (`oodbench runs list --check` lists all)", d,
                            _reason(exc))
                continue

    @staticmethod
    def _new_id(record: RunRecord) -> str:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        digest = hash_json(json.loads(json.dumps(record.to_json(), default=_json_default)), 6)
        parts = [record.benchmark, record.backbone.get("name", "?"), record.method,
                 record.postprocessor.get("name", "?")]
        return "-".join([stamp, *(id_part(str(p)) for p in parts), digest[:6]])


#: Record fields that say when, where and by which code a run was stored, not what it is (left out of its identity:
#: the numbers do not depend on the CPU thread count, so a rerun with another one is the same run).
_NOT_IDENTITY = ("time", "run_id", "code_version", "provenance")


def run_identity(record: RunRecord) -> str:
    """A digest of everything a record says about what ran and what came out — settings, data, counts, metrics —
    leaving out :data:`_NOT_IDENTITY` and, in ``extra``, timings (keys ending in ``seconds``) and the process
    count. Two records with the same identity are the same run stored twice."""
    data = json.loads(json.dumps(record.to_json(), default=_json_default))
    for key in _NOT_IDENTITY:
        data.pop(key, None)
    data["extra"] = {k: v for k, v in (data.get("extra") or {}).items()
                     if not k.endswith("seconds") and k != "world_size"}
    return hash_json(data)


def id_part(name: str, limit: int = ID_PART_MAX) -> str:
    """``name`` as one part of a run id: runs of characters other than ``A-Z a-z 0-9 _ . + -`` become ``_``, no
    leading or trailing ``_ . -``, and a name longer than ``limit`` keeps its first and last characters around a
    ``~`` (``local-dir:/a/long/path/model`` -> ``local-dir_~long_path_model``)."""
    text = _ID_CHARS.sub("_", name).strip("_.-") or "_"
    if len(text) > limit:
        head = (limit - 1) // 3
        text = text[:head].rstrip("_.-") + "~" + text[-(limit - 1 - head):].lstrip("_.-")
    return text


def check_record(data: Any) -> None:
    """Raise :class:`ValueError` (one line) unless ``data`` (a parsed ``result.json``) is a run record: an object
    with the required fields of their types, and metrics that are numbers (or null) per OOD set and metric."""
    if not isinstance(data, dict):
        raise ValueError(f"not a run record (a JSON {type(data).__name__}, not an object)")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"field(s) {', '.join(missing)} missing")
    for key, typ in _REQUIRED.items():
        if not isinstance(data[key], typ):
            raise ValueError(f"field '{key}' is a {type(data[key]).__name__}, not a {typ.__name__}")
    for row, values in data["metrics"].items():
        if not isinstance(values, dict):
            raise ValueError(f"metrics of '{row}' are a {type(values).__name__}, not an object")
        for metric, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"metric {metric} of '{row}' is {value!r}, not a number")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg}, line {exc.lineno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


_FILTER_FIELDS = {
    "benchmark": lambda r: r.benchmark,
    "backbone": lambda r: r.backbone.get("name", ""),
    "postprocessor": lambda r: r.postprocessor.get("name", ""),
    "method": lambda r: r.method,
    "id_set": lambda r: r.id_set,
}


def _matches(record: RunRecord, filters: dict[str, str]) -> bool:
    for key, pattern in filters.items():
        if pattern is None:
            continue
        if key not in _FILTER_FIELDS:
            raise ValueError(f"cannot filter runs by '{key}'; use one of {', '.join(_FILTER_FIELDS)}")
        if not fnmatch.fnmatch(str(_FILTER_FIELDS[key](record)), str(pattern)):
            return False
    return True


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def code_version() -> str:
    """``oodbench <version>`` plus the git commit when running from a checkout (``+dirty`` if modified;
    :func:`oodbench.provenance.git_commit`)."""
    from oodbench.provenance import git_commit

    commit = git_commit()
    return f"oodbench {__version__}" + (f" ({commit})" if commit else "")
