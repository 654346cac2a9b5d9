"""The SeTAR paper's published tables as data: ``papers/setar/data/``, package data of oodbench.

Paper: Li, Xiong, Chen, Chen, *SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation*,
NeurIPS 2024. Two versions exist: ``neurips`` (the proceedings, Tables 1-19) and ``arxiv`` (the extended
version, Tables 1-22, with ResNet50, near-OOD and NegLabel results). ``papers/setar/data/README.md``
describes the files; ``index.csv`` lists every table and its number in the other version.

The CSV files ship inside the package (``[tool.setuptools.package-data]``), so this module and ``oodbench tables``
work from an installed wheel as from a source checkout; pass ``root=`` to read a copy elsewhere.

Every table is stored in long form, one cell per line::

    version,table,row,column,metric,value,std,marker,note
    neurips,1,ImageNet1K / MCM Score / Vanilla MCM∗,iNaturalist,FPR95,32.07,,∗,

``row`` joins the table's group labels and the row label with " / ", the label as printed (with its † or ∗).
Values are strings exactly as printed (x100, 2 decimals for the metrics); an empty value goes with a marker
``−`` (not applicable) or ``⋄`` (not reported in the cited paper).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from oodbench.errors import UserError

PAPER_DIR = Path(str(resources.files("oodbench.papers.setar") / "data"))
VERSIONS = ("neurips", "arxiv")
FIELDS = ("version", "table", "row", "column", "metric", "value", "std", "marker", "note")
INDEX_FIELDS = ("version", "table", "file", "title", "reports", "id_datasets", "backbones",
                "other_version", "other_table", "relation", "notes")
ROW_MARKERS = "†∗"
CELL_MARKERS = "−⋄"
ROW_SEP = " / "


@dataclass(frozen=True)
class PaperCell:
    """One printed cell of a paper table.

    Attributes:
        value: the number as a float, a text value (``"ID"``/``"OOD"`` in the dataset statistics), or
            ``None`` for an empty cell (``−`` not applicable, ``⋄`` not reported).
        std: the ``±`` standard deviation as a float, else ``None``.
        printed: the value as printed (keeps trailing zeros), ``""`` for an empty cell.
    """

    version: str
    table: int
    row: str
    column: str
    metric: str
    value: float | str | None
    std: float | None
    marker: str
    note: str
    printed: str

    @property
    def cited(self) -> bool:
        """Marked † — cited from another paper."""
        return "†" in self.marker

    @property
    def rerun(self) -> bool:
        """Marked ∗ — the authors' re-run of a baseline."""
        return "∗" in self.marker

    @property
    def not_applicable(self) -> bool:
        """Printed ``-``: the OOD set overlaps the ID classes."""
        return "−" in self.marker

    @property
    def not_reported(self) -> bool:
        """Printed ``⋄``: absent from the cited paper."""
        return "⋄" in self.marker


def _root(root: str | Path | None) -> Path:
    path = Path(root) if root is not None else PAPER_DIR
    if not (path / "index.csv").is_file():
        raise UserError(f"paper tables not found: {path / 'index.csv'} is missing — they ship with oodbench as "
                        "package data (papers/setar/data); reinstall oodbench or pass the folder of a copy")
    return path


def _version(version: str) -> str:
    v = str(version).strip().lower()
    if v not in VERSIONS:
        raise UserError(f"unknown paper version {version!r} — choose one of: {', '.join(VERSIONS)}")
    return v


def _read(path: Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != fields:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(fields)}")
        return list(reader)


def paper_tables(root: str | Path | None = None) -> list[dict[str, str]]:
    """The index: one dict per table (see ``INDEX_FIELDS``), NeurIPS tables first, in table order."""
    return _read(_root(root) / "index.csv", INDEX_FIELDS)


def load_paper_table(version: str, number: int, root: str | Path | None = None) -> list[dict[str, str]]:
    """All cells of one table as CSV dicts (strings as printed), in the paper's reading order.

    Args:
        version: ``"neurips"`` or ``"arxiv"``.
        number: the table number in that version.
    """
    v = _version(version)
    base = _root(root)
    known = sorted(int(r["table"]) for r in paper_tables(base) if r["version"] == v)
    try:
        n = int(number)
    except (TypeError, ValueError):
        n = -1
    if n not in known:
        raise UserError(f"{v} paper has no table {number!r} — tables {known[0]}-{known[-1]}")
    return _read(base / v / f"table{n:02d}.csv", FIELDS)


def _cell(d: dict[str, str]) -> PaperCell:
    raw = d["value"]
    if raw == "":
        value: float | str | None = None
    else:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    return PaperCell(version=d["version"], table=int(d["table"]), row=d["row"], column=d["column"],
                     metric=d["metric"], value=value, std=float(d["std"]) if d["std"] else None,
                     marker=d["marker"], note=d["note"], printed=raw)


def paper_cells(version: str, number: int, root: str | Path | None = None) -> list[PaperCell]:
    """Like :func:`load_paper_table`, with values parsed (see :class:`PaperCell`)."""
    return [_cell(d) for d in load_paper_table(version, number, root)]


def _strip_marker(label: str) -> str:
    return label[:-1] if label and label[-1] in ROW_MARKERS else label


def lookup(version: str, table: int, row: str, column: str, metric: str,
           root: str | Path | None = None) -> PaperCell:
    """One cell, e.g. ``lookup("neurips", 1, "ImageNet1K / MCM Score / SeTAR", "Average", "FPR95")``.

    ``row`` is the full " / "-joined label. The row's † or ∗ may be left out when that leaves a single row
    (``"Pascal-VOC / MCM Score / Vanilla MCM"`` is ambiguous: the table prints a † row and a ∗ row).

    Raises:
        UserError: unknown version, table, row, column or metric, or an ambiguous row.
    """
    cells = load_paper_table(version, table, root)
    v, n = _version(version), int(table)
    rows = list(dict.fromkeys(c["row"] for c in cells))
    if row in rows:
        match = row
    else:
        candidates = [r for r in rows if _strip_marker(r) == row]
        if len(candidates) > 1:
            raise UserError(f"{v} table {n}: row {row!r} is ambiguous — say which: {', '.join(candidates)}")
        if not candidates:
            raise UserError(f"{v} table {n} has no row {row!r} — rows: {'; '.join(rows)}")
        match = candidates[0]
    in_row = [c for c in cells if c["row"] == match]
    for c in in_row:
        if c["column"] == column and c["metric"] == metric:
            return _cell(c)
    pairs = ", ".join(f"{c['column']}/{c['metric']}" for c in in_row)
    raise UserError(f"{v} table {n}, row {match!r} has no cell {column}/{metric} — cells: {pairs}")
