"""Escaping for the Markdown and CSV files written from run fields (names, parameters, notes, ids).

A run's fields come from whoever made the run — a command line, an imported score file, a plugin — so text from
them must not act as markup or as a formula where the file is opened:

* **Markdown** (:func:`md_cell`, :func:`md_text`): ``<``, ``>`` and ``&`` become HTML entities (a renderer shows
  them as text; raw HTML such as ``<img onerror=...>`` is never passed through), ``|`` is escaped inside table cells
  and line breaks become spaces.
* **CSV** (:func:`csv_writer`, :func:`csv_cell`): a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return gets a leading ``'`` so that a spreadsheet shows it as text instead of evaluating it (the OWASP
  rule against CSV/formula injection). Cells that are plain numbers (``-0.57``, ``+1.23``, ``1e-3``) and a lone
  ``-`` are kept as they are, so numeric columns stay numeric.
"""

from __future__ import annotations

import csv
import html
from typing import Any, Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower().lstrip("+-") not in ("inf", "infinity", "nan")


def csv_cell(value: Any) -> Any:
    """``value`` as safe to put in a CSV cell: a text starting like a formula gets a leading ``'``."""
    if (isinstance(value, str) and value and value[0] in FORMULA_START and not _is_number(value)
            and value not in ("-", "+")):  # a lone dash (an empty cell's mark) is no formula
        return "'" + value
    return value


class _SafeWriter:
    """A ``csv.writer`` whose rows go through :func:`csv_cell`."""

    def __init__(self, writer: Any):
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(buf: Any, **kwargs: Any) -> _SafeWriter:
    """``csv.writer(buf, lineterminator="\\n", **kwargs)`` that escapes every cell (:func:`csv_cell`)."""
    kwargs.setdefault("lineterminator", "\n")
    return _SafeWriter(csv.writer(buf, **kwargs))


def md_text(text: Any) -> str:
    """Text for a Markdown heading or paragraph: HTML special characters as entities, one line."""
    return html.escape(str(text), quote=False).replace("\r", " ").replace("\n", " ")


def md_cell(text: Any) -> str:
    """Text for a Markdown table cell: :func:`md_text` plus ``|`` escaped."""
    return md_text(text).replace("|", "\\|")
