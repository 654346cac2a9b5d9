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

from importlib import resources
from pathlib import Path

from oodbench.errors import UserError
from oodbench.paper import PUBLISHED_FIELDS as FIELDS
from oodbench.paper import ROW_MARKERS, PaperCell, paper_cell, read_csv  # noqa: F401 (PaperCell: the cells' type)

PAPER_DIR = Path(str(resources.files("oodbench.papers.setar") / "data"))
VERSIONS = ("neurips", "arxiv")
INDEX_FIELDS = ("version", "table", "file", "title", "reports", "id_datasets", "backbones",
                "other_version", "other_table", "relation", "notes")
CELL_MARKERS = "−⋄"
ROW_SEP = " / "


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


def paper_tables(root: str | Path | None = None) -> list[dict[str, str]]:
    """The index: one dict per table (see ``INDEX_FIELDS``), NeurIPS tables first, in table order."""
    return read_csv(_root(root) / "index.csv", INDEX_FIELDS)


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
    return read_csv(base / v / f"table{n:02d}.csv", FIELDS)


def paper_cells(version: str, number: int, root: str | Path | None = None) -> list[PaperCell]:
    """Like :func:`load_paper_table`, with values parsed (see :class:`PaperCell`)."""
    return [paper_cell(d) for d in load_paper_table(version, number, root)]


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
            return paper_cell(c)
    pairs = ", ".join(f"{c['column']}/{c['metric']}" for c in in_row)
    raise UserError(f"{v} table {n}, row {match!r} has no cell {column}/{metric} — cells: {pairs}")
