"""Turn per-image score files written by other code into runs of the results store.

For example the official SeTAR code writes one ``scores_<set>_test.csv`` per split (one column per score:
``mcm_score``, ``gl_mcm_score``, ...), negated so that higher = OOD; such files are read with ``higher_is="ood"``
and converted at this boundary: the stored scores are higher = ID, and the metrics are computed by
:func:`oodbench.metrics.evaluate`, the same code every other run uses. The record says it was imported
(``extra["import"]``, see :func:`is_imported`), from which files (with their SHA-256) and in which orientation the
files were.

An import is checked so that it can fill the paper tables the way a run of oodbench would:

* every name is a registered one (backbone, benchmark, method, postprocessor; aliases resolve to the registered
  name, unknown names fail with suggestions); ``benchmark="adhoc"`` imports sets of one's own, unchecked;
* the postprocessor's hyperparameters are checked against its signature and completed with its defaults (tables
  match a run by the full parameter dict); ``mcm.tau`` (the ``run`` syntax) is accepted for the score imported;
* the precision is one oodbench runs at (default ``fp32``, as the official code and every table cell);
* the OOD set names are the benchmark's own, with its groups, and each file holds the split's number of images;
  a subset of the sets, or other image counts, only with ``partial=True`` (recorded; such a run fills no
  Average cell);
* the seed (per-seed cells) and the ID accuracy (``id_accuracy``: standard zero-shot accuracy, the paper text's
  Table 7) can be recorded, and so can the accuracies of the official Table 7 protocol per split
  (``extra["classify"]``, as :mod:`oodbench.classify` stores them; the splits the benchmark declares label lists for).

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
#: Precisions an import may record (those of ``oodbench run --precision``); tables take fp32 runs only.
PRECISIONS = ("fp32", "fp16", "bf16")
DEFAULT_PRECISION = "fp32"
#: The benchmark name of sets of one's own (as ``oodbench run --id-test DIR --ood NAME=DIR`` records them).
ADHOC = "adhoc"
_BACKBONE_REFERENCES = ("open_clip:", "timm:", "local-dir:")
#: What marks a value taken from an imported run in every table format (tables, ours-vs-paper, leaderboard).
MARK = "‡"
LEGEND = (f"{MARK}: from an imported run (`oodbench runs import`: per-image scores written by other code, the "
          "metrics computed by oodbench; `oodbench runs show RUN` names the files and their SHA-256)")


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
    precision: str = DEFAULT_PRECISION,
    note: str = "",
    seed: int | None = None,
    id_accuracy: float | None = None,
    partial: bool = False,
    classify: dict[str, float] | None = None,
) -> Path:
    """Read the score files, compute every metric and store one run; returns the new run folder.

    Args:
        store: where the run goes.
        id_file: scores of the ID test set (``.npy``, ``.npz``, ``.csv``/``.tsv`` with a header).
        ood_files: OOD set name -> score file.
        benchmark, backbone, method, postprocessor: what produced the scores, registered names (aliases are
            resolved; recorded and used by filters, tables and the leaderboard). ``benchmark="adhoc"``: sets of
            one's own, whose names, groups and counts are not checked.
        column: CSV column / npz key to read in every file; without it each file must hold one score, and the
            ID and OOD files' column names (where they have names) must agree.
        higher_is: ``"id"`` or ``"ood"``: what larger values in the files mean (official SeTAR CSVs: ``"ood"``).
        groups: OOD set name -> ``"near"`` / ``"far"`` (a registered benchmark's own groups; ``adhoc``: default
            ``far``).
        id_set: name of the ID set (default: the benchmark's ID test split; ``adhoc``: the ID file's stem).
        params: postprocessor hyperparameters that produced the scores (``NAME`` or ``POST.NAME`` keys); checked
            against the postprocessor's signature and completed with its defaults.
        pretrained: backbone weights tag or file, if known.
        plan: the modifier plan as JSON data (``entries`` etc.), if known; its ``name`` is ``method``.
        precision: the precision the other code ran at (``fp32``, ``fp16``, ``bf16``; default fp32).
        note: free text kept in the record.
        seed: the seed of the run that produced the scores (per-seed table cells need it).
        id_accuracy: top-1 accuracy on the ID test set as a fraction (Table 7), if known.
        partial: accept files covering only some of the benchmark's OOD sets or other image counts than its
            splits (recorded in ``extra["import"]["partial"]``).
        classify: split -> accuracy (a fraction) under the official Table 7 protocol (SeTAR's
            ``test_classify.py``), for splits the benchmark declares label lists for.

    Raises:
        UserError: missing or unreadable file, missing column, disagreeing column names, unknown names,
            parameters or precision, OOD sets or image counts that are not the benchmark's, orientation not
            ``id``/``ood``. Nothing is written then.
    """
    if higher_is not in ORIENTATIONS:
        raise UserError(f"--higher-is must be 'id' or 'ood', got '{higher_is}'")
    benchmark, backbone, method, postprocessor = resolve_names(benchmark, backbone, method, postprocessor)
    full_params = complete_params(postprocessor, params)
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: use one of {', '.join(PRECISIONS)} (the precision the scores were "
                        f"computed at; tables use {DEFAULT_PRECISION} runs)")
    seed = _check_seed(seed)
    id_accuracy = _check_accuracy(id_accuracy)
    classified = _check_classify(benchmark, classify)
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
    spec = None if benchmark == ADHOC else _benchmark_spec(benchmark)
    if spec is not None:
        groups, id_set, missing_sets = _check_sets(spec, ood_files, groups, id_set, partial)
    id_path = Path(id_file)
    paths = {name: Path(p) for name, p in ood_files.items()}
    for p in [id_path, *paths.values()]:
        if not p.is_file():
            raise UserError(f"score file not found: {p}")
    if column is None:
        _check_same_column(id_path, paths)

    id_scores = read_scores(id_path, column, higher_is)
    ood_scores = {name: read_scores(p, column, higher_is) for name, p in paths.items()}
    partial_info = None
    if spec is not None:
        counts = _check_counts(spec, id_scores.size, {n: s.size for n, s in ood_scores.items()}, partial)
        if missing_sets or counts:
            partial_info = {"missing_sets": missing_sets, "counts": counts}
    rows = evaluate(id_scores, ood_scores)

    files = {"id": _describe_file(id_path), "ood": {name: _describe_file(p) for name, p in paths.items()}}
    record = RunRecord(
        benchmark=benchmark,
        id_set=id_set or id_path.stem,
        ood_sets={name: groups.get(name, DEFAULT_GROUP) for name in paths},
        backbone={"name": backbone, "pretrained": pretrained, "weights_hash": None},
        plan={**(plan or {}), "name": method, "hash": (plan or {}).get("hash")},
        postprocessor={"name": postprocessor, "params": full_params, "aps": None},
        metrics=rows,
        counts={"id": int(id_scores.size), "ood": {n: int(s.size) for n, s in ood_scores.items()}, "skipped": {}},
        precision=precision,
        id_accuracy=id_accuracy,
        seed=seed,
        device="",
        extra={"import": {
            "files": files,
            "column": column,
            "higher_is": higher_is,
            "orientation": ("file values negated at import: stored scores are higher = ID" if higher_is == "ood"
                            else "file values kept: already higher = ID"),
            "note": note,
            "params_given": dict(params or {}),
        } | ({"partial": partial_info} if partial_info else {})}
        | ({"classify": classified} if classified else {}),
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
    """Whether ``record`` was stored by :func:`import_run` (it carries ``extra["import"]``); every table format
    marks such values with :data:`MARK` and says so in its legend (:data:`LEGEND`)."""
    return "import" in (record.extra or {})


# ------------------------------------------------------------------------------------------------ checks
def resolve_names(benchmark: str, backbone: str, method: str, postprocessor: str) -> tuple[str, str, str, str]:
    """The registered names the four given names stand for (aliases resolved); one-line errors with suggestions.

    ``benchmark`` may also be ``adhoc`` (sets of one's own) and ``backbone`` an ``open_clip:`` / ``timm:`` /
    ``local-dir:`` reference (as ``oodbench run --backbone`` takes them).
    """
    from oodbench.registry import RegistryError, canonical

    values = {"--benchmark": benchmark, "--backbone": backbone, "--method": method, "--post": postprocessor}
    for flag, value in values.items():
        if not value or not str(value).strip():
            raise UserError(f"{flag} must not be empty")
    out = []
    for flag, kind, value in (("--benchmark", "benchmarks", benchmark), ("--backbone", "backbones", backbone),
                              ("--method", "methods", method), ("--post", "postprocessors", postprocessor)):
        value = str(value).strip()
        if (kind == "benchmarks" and value == ADHOC) or (kind == "backbones" and value.startswith(_BACKBONE_REFERENCES)):
            out.append(value)
            continue
        try:
            out.append(canonical(kind, value))
        except RegistryError as exc:
            extra = (f"; '{ADHOC}' imports OOD sets of your own (their names and counts unchecked)"
                     if kind == "benchmarks" else "")
            raise UserError(f"{flag}: {exc}{extra}") from None
    return out[0], out[1], out[2], out[3]


def complete_params(postprocessor: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against the registered postprocessor's signature and completed with its defaults.

    Keys are ``NAME`` or ``POST.NAME`` (the ``oodbench run --param`` syntax; ``POST`` must be the score imported).
    An int given for a float default is stored as a float. Raises a one-line :class:`UserError` naming the valid
    parameters and their defaults.
    """
    from oodbench.registry import RegistryError, canonical, get

    cls = get("postprocessors", postprocessor)
    name = getattr(cls, "registry_name", "") or postprocessor
    defaults = cls().get_params()
    valid = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
    given: dict[str, Any] = {}
    for key, value in (params or {}).items():
        shown = f"--param {key}={value}"
        prefix, dot, param = str(key).rpartition(".")
        if dot:
            try:
                owner = canonical("postprocessors", prefix)
            except RegistryError:
                owner = None
            if owner != name:
                raise UserError(f"{shown}: the scores imported are {name}'s (--post {name}); write "
                                f"{param}={value} or {name}.{param}={value}")
            key = param
        if key not in defaults:
            raise UserError(f"{shown}: {name} has no parameter '{key}'; its parameters: {valid}")
        if key in given:
            raise UserError(f"{shown}: the parameter '{key}' is given twice")
        given[key] = _typed(name, key, value, defaults[key])
    try:
        return cls().set_params(**given).get_params()
    except (TypeError, ValueError) as exc:
        raise UserError(f"--param: {name} refuses {given}: {exc}") from None


def _typed(post: str, key: str, value: Any, default: Any) -> Any:
    """``value`` in the type of ``default`` where that is unambiguous (int -> float); a clear error otherwise."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"--param {key}={value}: {post}.{key} is True or False")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"--param {key}={value}: {post}.{key} is a number (default {default!r})")
        return float(value) if isinstance(default, float) else value
    return value


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"--seed {seed}: a seed is a whole number")
    return int(seed)


def _check_accuracy(value: Any, flag: str = "--id-accuracy ") -> float | None:
    if value is None:
        return None
    try:
        acc = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{flag}{value}: give the top-1 accuracy as a fraction, e.g. 0.6407") from None
    if not np.isfinite(acc) or not 0.0 <= acc <= 1.0:
        hint = f" (for {acc:g}% write {acc / 100:.6g})" if 1.0 < acc <= 100.0 else ""
        raise UserError(f"{flag}{value}: give a fraction between 0 and 1{hint}")
    return acc


def _check_classify(benchmark: str, classify: dict[str, Any] | None) -> dict[str, Any] | None:
    """``extra["classify"]`` of the given official-protocol accuracies (see :func:`oodbench.classify.classify_value`)."""
    if not classify:
        return None
    declared = list(getattr(_benchmark_spec(benchmark), "classify_labels", {}) or {}) if benchmark != ADHOC else []
    if not declared:
        raise UserError(f"--classify-accuracy: {benchmark} declares no label lists of the official classification "
                        "protocol (use --id-accuracy for the ID accuracy)")
    sets = {}
    for split, value in classify.items():
        if split not in declared:
            raise UserError(f"--classify-accuracy {split}=...: {benchmark} has no label list for '{split}'"
                            f"{_close(split, declared)}; its lists: {', '.join(declared)}")
        acc = _check_accuracy(value, f"--classify-accuracy {split}=")
        sets[split] = {"accuracy": acc}
    from oodbench.classify import PROTOCOL

    return {"protocol": PROTOCOL + " (imported: accuracies computed by other code)", "expected": declared,
            "sets": sets}


def _benchmark_spec(benchmark: str):
    from oodbench.benchmark import get_benchmark

    return get_benchmark(benchmark)


def _close(name: str, choices: list[str]) -> str:
    """`` (did you mean X?)`` for a near or case-insensitive match among ``choices``, else ``""``."""
    import difflib

    folded = {c.casefold(): c for c in choices}
    if name.casefold() in folded:
        return f" (did you mean {folded[name.casefold()]}?)"
    close = difflib.get_close_matches(name.casefold(), list(folded), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(folded[c] for c in close)}?)" if close else ""


def _check_sets(spec, ood_files: dict[str, Any], groups: dict[str, str], id_set: str | None,
                partial: bool) -> tuple[dict[str, str], str, list[str]]:
    """The benchmark's groups of the given sets, the ID set name and the benchmark's sets not given; errors for
    names it does not declare, groups that are not its, another ID set name, or missing sets without ``partial``."""
    declared = {s.name: s.group for s in spec.ood}
    for name in ood_files:
        if name not in declared:
            raise UserError(f"--ood {name}=...: {spec.name} has no OOD set '{name}'{_close(name, list(declared))}; "
                            f"its OOD sets: {', '.join(declared)}")
    for name, group in groups.items():
        if group != declared[name]:
            raise UserError(f"--group {name}={group}: {name} is a {declared[name]} OOD set of {spec.name}")
    if id_set is not None and id_set != spec.id_test.name:
        raise UserError(f"--id-set {id_set}: the ID test set of {spec.name} is '{spec.id_test.name}' "
                        "(leave --id-set out)")
    missing = [n for n in declared if n not in ood_files]
    if missing and not partial:
        raise UserError(f"{spec.name} has {len(declared)} OOD sets; the files cover {len(ood_files)} (missing: "
                        f"{', '.join(missing)}): give --ood NAME=FILE for each, or pass --partial (a partial run "
                        "fills the cells of its sets, never an Average)")
    return {n: declared[n] for n in ood_files}, spec.id_test.name, missing


def _check_counts(spec, n_id: int, n_ood: dict[str, int], partial: bool) -> dict[str, dict[str, int]]:
    """Scores per file against the image counts of the benchmark's splits: ``{split: {"expected", "found"}}`` of
    the differing ones (an error unless ``partial``)."""
    expected = {spec.id_test.name: (spec.id_test.expected, n_id, "--id")}
    expected.update({s.name: (s.expected, n_ood[s.name], f"--ood {s.name}=...") for s in spec.ood if s.name in n_ood})
    differ = {}
    for name, (want, found, flag) in expected.items():
        if want is not None and want != found:
            if not partial:
                raise UserError(f"{flag}: the file holds {found} scores, but {spec.name}'s split '{name}' has {want} "
                                "images; import the scores of the whole split, or pass --partial to store these")
            differ[name] = {"expected": int(want), "found": int(found)}
    return differ


# ------------------------------------------------------------------------------------------ tables
def import_command(spec, files: str = "FILE") -> str | None:
    """The ``oodbench runs import`` command that stores a run of the table spec ``spec`` (a
    :class:`~oodbench.paper.RunSpec`) from per-image score files, or None when an import cannot
    record what the spec needs (method options, a plan truncated to some search steps, an ad-hoc benchmark)."""
    from oodbench.paper import ood_sets_of

    if spec.blocked or spec.options or spec.step is not None or spec.benchmark == ADHOC:
        return None
    parts = ["oodbench runs import", f"--benchmark {spec.benchmark}", f"--backbone {spec.backbone}"]
    if spec.pretrained:
        parts.append(f"--pretrained {spec.pretrained}")
    parts += [f"--method {spec.method}", f"--post {spec.post}"]
    parts += [f"--param {k}={v}" for k, v in sorted(spec.params.items())]
    if spec.seed is not None:
        parts.append(f"--seed {spec.seed}")
    parts.append(f"--id ID_{files}")
    for name in ood_sets_of(spec.benchmark):
        arg = f"{name}={name.replace(' ', '_')}_{files}"
        parts.append(f"--ood '{arg}'" if " " in arg else f"--ood {arg}")
    parts.append("[--column COL] [--higher-is ood]")
    return " ".join(parts)
