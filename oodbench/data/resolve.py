"""Resolve a benchmark spec on a data root: find every split's files, check counts, build the sources.

:func:`inspect_splits` looks at every split and never raises for missing data (``oodbench data verify`` uses
it); :func:`resolve_files` raises :class:`~oodbench.errors.DataError` with one actionable line for the first
split that is missing or short; :func:`resolve` dispatches to the spec (in-memory benchmarks such as ``digits``
resolve themselves).

Rules (the official SeTAR checker compares file lists exactly; we compare counts and listed files):

* a split with an expected count must have exactly that many images;
* a listed file (imglist / JSON list) that does not exist is reported; without an expected count it is left
  out with a warning (``on_bad="skip"``) or fatal (``on_bad="fail"``);
* an ID split must cover the benchmark's classes (as many class folders as class names, labels in range);
* a file list whose SHA-256 is pinned in the spec (``SplitSpec.list_sha256``) must have that digest; every list's
  digest is kept (``ResolvedBenchmark.list_digests``) and recorded with each run.

Unreadable image *contents* (corrupt, truncated, zero-byte, not an image) are found while loading
(:mod:`oodbench.features.extract`) or by ``oodbench data verify``, not here: resolving never decodes images.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from oodbench.data.splits import ResolvedBenchmark, Role

# ``BenchmarkSpec`` / ``SplitSpec`` (:mod:`oodbench.benchmark`) appear in annotations only: the benchmark contract
# calls this module (``BenchmarkSpec.resolve``), so it is not imported here.
from oodbench.data.readers import read_imagefolder, read_imglist, read_jsonlist
from oodbench.data.sources import FileListSource, ImageSource
from oodbench.errors import DataError, UserError
from oodbench.hashing import hash_file

log = logging.getLogger("oodbench")

ON_BAD = ("skip", "fail")


@dataclass
class SplitCheck:
    """What was found for one split.

    Attributes:
        role: the split's :class:`~oodbench.benchmark.Role`.
        split: the spec of the split.
        location: the folder its images live in (for lists: the folder the list's paths are relative to).
        source: the files that exist, in reading order (None when nothing could be read).
        listed: files the split names (for ImageFolder trees: the files found).
        missing: listed files that do not exist (paths).
        problem: one-line reason the split is unusable, or None.
        list_sha256: SHA-256 of the split's file list (lists only).
    """

    role: Role
    split: SplitSpec
    location: Path
    source: FileListSource | None = None
    listed: int = 0
    missing: list[str] = field(default_factory=list)
    problem: str | None = None
    list_sha256: str | None = None

    @property
    def found(self) -> int:
        return 0 if self.source is None else len(self.source)


def _hint(spec: BenchmarkSpec) -> str:
    from oodbench.registry import registry

    if spec.name in registry("benchmarks"):
        return f"see `oodbench data layout {spec.name}`"
    return "see `oodbench data --help`"


def check_split(spec: BenchmarkSpec, role: Role, split: SplitSpec, data_root: str | Path | None) -> SplitCheck:
    """Find the files of one split under ``data_root`` (absolute split paths ignore it). Never raises DataError."""
    root = Path(data_root) if data_root is not None else Path()
    location = root / split.path
    check = SplitCheck(role, split, location)
    ood = not Role(role).is_id
    try:
        if split.format == "imagefolder":
            check.source = read_imagefolder(location, split.name, classes=split.classes, ood=ood,
                                            class_subset=split.class_subset)
        elif split.format in ("imglist", "jsonlist"):
            if not split.list_file:
                raise DataError(f"{split.name}: format {split.format} needs a list_file")
            lst = spec.list_path(split.list_file, data_root)
            if not lst.is_file():
                raise DataError(f"{split.name} split: file list {lst} not found — {_hint(spec)}")
            check.list_sha256 = hash_file(lst)
            if split.list_sha256 and check.list_sha256 != split.list_sha256:
                raise DataError(f"{split.name} split: file list {lst} has SHA-256 {check.list_sha256[:16]}…, not the "
                                f"pinned {split.list_sha256[:16]}… of the published list — {_hint(spec)}")
            if split.format == "imglist":
                check.source = read_imglist(lst, location, split.name, ood=ood)
            else:
                check.source = read_jsonlist(lst, location, split.name, classes=split.classes, ood=ood)
        elif split.format == "array":
            raise DataError(f"{split.name}: built in memory; benchmark '{spec.name}' must resolve itself")
        else:
            raise DataError(f"{split.name}: unknown split format '{split.format}' (imagefolder, imglist, jsonlist)")
    except DataError as exc:
        check.problem = str(exc)
        return check
    src = check.source
    check.listed = len(src)
    if split.format != "imagefolder":
        keep = [i for i, rel in enumerate(src.relpaths) if os.path.isfile(location / rel)]
        if len(keep) < len(src):
            kept = set(keep)
            check.missing = [str(location / rel) for i, rel in enumerate(src.relpaths) if i not in kept]
            check.source = src.subset(keep)
    _check_counts(spec, role, check)
    return check


def _check_counts(spec: BenchmarkSpec, role: Role, check: SplitCheck) -> None:
    split, found = check.split, check.found
    if split.expected is not None and found != split.expected:
        what = f"{split.expected:,} images" + (f" listed in {split.list_file}" if split.list_file else "")
        check.problem = f"{split.name} split: expected {what} under {check.location}, found {found:,} — {_hint(spec)}"
        return
    if found == 0:
        check.problem = f"{split.name} split: no images under {check.location} — {_hint(spec)}"
        return
    if Role(role).is_id and check.source is not None:
        n_cls = len(spec.class_names)
        labels = check.source.labels
        classes = check.source.classes
        if n_cls < 2:
            check.problem = (f"{split.name} split: benchmark '{spec.name}' has {n_cls} class name; an ID set needs "
                             "at least 2 classes (with one, MCM and softmax scores are constant and ID accuracy is "
                             "trivially 100%)")
        elif classes is not None and split.format != "imglist" and len(classes) != n_cls:
            check.problem = (f"{split.name} split: {len(classes)} class folders under {check.location}, but the "
                             f"benchmark has {n_cls} class names — {_hint(spec)}")
        elif labels.min() < 0 or labels.max() >= n_cls:
            check.problem = (f"{split.name} split: labels must lie in 0..{n_cls - 1} (one per class name), "
                             f"found {labels.min()}..{labels.max()} — {_hint(spec)}")


def inspect_splits(spec: BenchmarkSpec, data_root: str | Path | None, roles=None) -> list[SplitCheck]:
    """:func:`check_split` for every split of a file-based spec (only those of ``roles`` when given)."""
    wanted = None if roles is None else {Role(r) for r in roles}
    return [check_split(spec, role, split, data_root) for role, split in spec.split_specs()
            if wanted is None or role in wanted]


def resolve_files(spec: BenchmarkSpec, data_root: str | Path | None, on_bad: str = "skip",
                  roles=None) -> ResolvedBenchmark:
    """Sources of every split of a file-based spec; the first unusable split raises one-line :class:`DataError`.

    Args:
        spec: the benchmark.
        data_root: folder the split paths are relative to (absolute split paths, as in ad-hoc benchmarks,
            need none).
        on_bad: what to do with listed files that do not exist in a split with no expected count:
            ``"skip"`` (leave them out, warn, record them in ``skipped``) or ``"fail"``.
        roles: resolve only the splits of these roles (e.g. ``("id_val",)`` for a search); the others are None
            / empty in the result. None = every split.
    """
    _check_on_bad(on_bad)
    checks = inspect_splits(spec, data_root, roles)
    for c in checks:
        if c.problem:
            raise DataError(c.problem)
        if c.missing and on_bad == "fail":
            raise DataError(f"{c.split.name} split: {len(c.missing):,} listed file(s) missing, e.g. {c.missing[0]} — "
                            f"restore them, or pass --on-bad skip to leave them out")
    sources: dict[Role, dict[str, ImageSource]] = {r: {} for r in Role}
    resolved = ResolvedBenchmark(spec=spec, id_test=None, id_val=None, ood={})  # type: ignore[arg-type]
    for c in checks:
        sources[c.role][c.split.name] = c.source  # type: ignore[assignment]
        resolved.counts[c.split.name] = {"role": str(c.role), "group": c.split.group, "expected": c.split.expected,
                                         "listed": c.listed, "found": c.found, "missing": len(c.missing)}
        if c.list_sha256:
            resolved.list_digests[c.split.name] = c.list_sha256
        if c.missing:
            resolved.skipped[c.split.name] = list(c.missing)
            log.warning("%s: %d listed file(s) missing, left out (e.g. %s)", c.split.name, len(c.missing), c.missing[0])
    resolved.id_test = next(iter(sources[Role.ID_TEST].values()), None)
    resolved.id_val = next(iter(sources[Role.ID_VAL].values()), None)
    resolved.id_fit = next(iter(sources[Role.ID_FIT].values()), None)
    resolved.ood = sources[Role.OOD]
    resolved.ood_val = sources[Role.OOD_VAL]
    resolved.csid = sources[Role.CSID]
    return resolved


def resolve(spec: BenchmarkSpec, data_root: str | Path | None = None, on_bad: str = "skip",
            roles=None) -> ResolvedBenchmark:
    """Resolve any benchmark: file-based specs on ``data_root``; in-memory ones (``digits``) by themselves.

    ``roles``: resolve only the splits of these roles (file-based specs; in-memory ones build every split).

    Raises:
        UserError: a file-based benchmark and no data root.
        DataError: a split is missing, short, or (``on_bad="fail"``) lists files that do not exist.
    """
    _check_on_bad(on_bad)
    if data_root is None and spec.needs_data_root and not _all_absolute(spec):
        raise UserError(f"benchmark '{spec.name}' reads images from a data root: pass --data-root DIR "
                        f"(or set OODBENCH_DATA_ROOT) — {_hint(spec)}")
    if data_root is not None and not Path(data_root).is_dir():
        raise DataError(f"data root {data_root} is not a folder — {_hint(spec)}")
    if getattr(type(spec).resolve, "resolves_files", False):  # BenchmarkSpec.resolve, not an override
        return resolve_files(spec, data_root, on_bad=on_bad, roles=roles)
    params = inspect.signature(spec.resolve).parameters
    if "on_bad" in params:
        return spec.resolve(data_root, on_bad=on_bad)
    return spec.resolve(data_root)


def _all_absolute(spec: BenchmarkSpec) -> bool:
    return all(Path(s.path).is_absolute() for _, s in spec.split_specs() if s.format != "array")


def _check_on_bad(on_bad: str) -> None:
    if on_bad not in ON_BAD:
        raise UserError(f"on_bad must be one of {', '.join(ON_BAD)}, got '{on_bad}'")
