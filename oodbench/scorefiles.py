"""Read per-sample score files written by oodbench or by other tools.

Formats: ``.npy`` (one 1-D array), ``.npz`` (one array per key) and ``.csv`` / ``.tsv`` with a header row and one
column per score (the official SeTAR code writes such CSVs, negated so that higher = OOD). A CSV may start with a
UTF-8 byte-order mark and end with blank lines; a blank line between scores is an error (dropping it would pair
every later score with the wrong image), and so are values that are not numbers (a string-typed ``.npy``). The
orientation is converted here, at the boundary: everything returned is higher = more in-distribution.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from oodbench.errors import UserError

ORIENTATIONS = ("id", "ood")


def read_scores(path: str | Path, column: str | None = None, higher_is: str = "id") -> np.ndarray:
    """Load one score column and return it oriented higher = ID (float64, 1-D).

    :func:`read_named_scores` also says which column was read.

    Args:
        path: ``.npy``, ``.npz``, ``.csv`` or ``.tsv`` file.
        column: key (npz) or header name (csv); may be omitted when the file holds a single score.
        higher_is: ``"id"`` when larger values in the file mean more in-distribution, ``"ood"`` when they
            mean more out-of-distribution (SeTAR ``scores_*.csv``, pytorch-ood outlier scores).

    Raises:
        UserError: unreadable file, unknown format, missing column, empty or non-numeric values.
    """
    return read_named_scores(path, column, higher_is)[0]


def read_named_scores(path: str | Path, column: str | None = None,
                      higher_is: str = "id") -> tuple[np.ndarray, str | None]:
    """:func:`read_scores` and the name of the column (CSV header, npz key, structured-array field) it read;
    None for a plain ``.npy`` array, which names nothing."""
    if higher_is not in ORIENTATIONS:
        raise UserError(f"--higher-is must be 'id' or 'ood', got '{higher_is}'")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"score file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values, name = _from_npy(path, column)
        elif suffix == ".npz":
            values, name = _from_npz(path, column)
        elif suffix in (".csv", ".tsv", ".txt"):
            values, name = _from_csv(path, column)
        else:
            raise UserError(f"{path}: unknown score-file format '{suffix}' (use .npy, .npz or .csv with a header)")
        values = np.asarray(values)
        if values.dtype.kind not in "iuf":
            raise UserError(f"{path}{'' if name is None else f' ({name})'}: holds {values.dtype} values, not numbers; "
                            "a score file holds one number per image")
        values = values.astype(np.float64).ravel()
    except UserError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: cannot read scores ({type(exc).__name__}: {exc})") from exc
    if values.size == 0:
        raise UserError(f"{path}: no scores in the file")
    return (values if higher_is == "id" else -values), name


def _from_npy(path: Path, column: str | None) -> tuple[np.ndarray, str | None]:
    arr = np.load(path, allow_pickle=False)
    if arr.dtype.names:  # structured array: columns by name
        return _pick(path, {n: arr[n] for n in arr.dtype.names}, column)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise UserError(f"{path}: expected a 1-D array of scores, got shape {arr.shape}")
    return arr, None


def _from_npz(path: Path, column: str | None) -> tuple[np.ndarray, str | None]:
    with np.load(path, allow_pickle=False) as z:
        return _pick(path, {k: z[k] for k in z.files}, column)


def _from_csv(path: Path, column: str | None) -> tuple[np.ndarray, str | None]:
    with open(path, newline="", encoding="utf-8-sig") as fh:  # a byte-order mark is not part of the header
        sample = fh.read(4096)
        fh.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in sample and "," not in sample) else ","
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise UserError(f"{path}: the file is empty") from None
        _looks_numeric = all(_is_float(h) for h in header)
        if _looks_numeric:
            raise UserError(f"{path}: the first row must be a header naming the score columns, got numbers")
        if column is None:
            if len(header) != 1:
                raise UserError(f"{path}: several columns ({', '.join(header)}); choose one with --column")
            idx = 0
        elif column in header:
            idx = header.index(column)
        else:
            raise UserError(f"{path}: no column '{column}'; columns: {', '.join(header)}")
        values = []
        blank = None  # the first blank line: fine at the end of the file, an error before another score
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                blank = blank or line_no
                continue
            if blank is not None:
                raise UserError(f"{path}:{blank}: blank line between scores (a missing score would shift every "
                                "later one to the wrong image); remove it or fill in the score")
            if idx >= len(row):
                raise UserError(f"{path}:{line_no}: row has {len(row)} fields, column '{header[idx]}' missing")
            try:
                values.append(float(row[idx]))
            except ValueError:
                raise UserError(f"{path}:{line_no}: '{row[idx]}' is not a number") from None
    return np.asarray(values), header[idx]


def _pick(path: Path, arrays: dict[str, np.ndarray], column: str | None) -> tuple[np.ndarray, str]:
    if column is None:
        if len(arrays) != 1:
            raise UserError(f"{path}: several arrays ({', '.join(arrays)}); choose one with --column")
        return next(iter(arrays.values())), next(iter(arrays))
    if column not in arrays:
        raise UserError(f"{path}: no array '{column}'; arrays: {', '.join(arrays) or 'none'}")
    return arrays[column], column


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
