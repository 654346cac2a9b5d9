"""Render metric rows as rich tables and write them as CSV / JSON (values x100 in tables and CSV)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from oodbench import atomic
from oodbench.errors import UserError
from oodbench.metrics import METRICS
from oodbench.reporting.escape import csv_writer

HEADERS = {
    "fpr95": "FPR95↓",
    "fpr95_oodpos": "FPR95(OOD+)↓",
    "auroc": "AUROC↑",
    "aupr_in": "AUPR-In↑",
    "aupr_out": "AUPR-Out↑",
}


def metrics_table(rows: dict[str, dict[str, float]], title: str = "", caption: str = "",
                  groups: dict[str, str] | None = None, metrics=METRICS,
                  stds: dict[str, dict[str, float]] | None = None) -> Table:
    """One row per OOD set (then ``average``), one column per metric, values x100 with 2 decimals; with ``stds``
    (same shape, e.g. the std over a test-time run's stream orders) each value is followed by ``± std``."""
    table = Table(title=title or None, caption=caption or None, title_justify="left", caption_justify="left")
    table.add_column("OOD set", style="bold")
    if groups:
        table.add_column("group")
    for m in metrics:  # numbers are never wrapped nor cut (oodbench.console.print_table splits a too-wide table)
        table.add_column(HEADERS.get(m, m), justify="right", no_wrap=True)
    for name, row in rows.items():
        if name == "average":
            table.add_section()
        cells = [name] + ([groups.get(name, "")] if groups else [])
        std = (stds or {}).get(name) or {}
        cells += [f"{100 * row[m]:.2f}" + (f" ± {100 * std[m]:.2f}" if std.get(m) is not None else "")
                  for m in metrics]
        table.add_row(*cells)
    return table


def stream_stds(record) -> dict[str, dict[str, float]] | None:
    """``{row: {metric: std}}`` over the stream orders of a test-time run (from its per-order metrics), else None."""
    from oodbench.results.runs import is_test_time, order_std

    if not is_test_time(record):
        return None
    return {name: {m: order_std(record, name, m) for m in row} for name, row in record.metrics.items()}


def rows_to_csv(rows: dict[str, dict[str, float]], metrics=METRICS) -> str:
    buf = io.StringIO()
    w = csv_writer(buf)  # set names come from run fields: formula-like text escaped
    w.writerow(["ood_set", *metrics])
    for name, row in rows.items():
        w.writerow([name, *(f"{100 * row[m]:.4f}" for m in metrics)])
    return buf.getvalue()


def write_rows(rows: dict[str, dict[str, float]], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``rows`` to ``path`` (``.csv``: x100; ``.json``: fractions plus ``meta``), atomically."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        text = rows_to_csv(rows)
    elif path.suffix.lower() == ".json":
        text = json.dumps({"metrics": rows, **(meta or {})}, indent=2) + "\n"
    else:
        raise UserError(f"--out {path}: use a .csv or .json file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)
    return path


def _cell(value, std) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def id_label(id_set: str) -> str:
    """``"ID <set>"`` for a caption, without saying ID twice (an ad-hoc benchmark's ID set is named ``ID test``)."""
    return id_set if id_set.split(" ", 1)[0].upper() == "ID" else f"ID {id_set}"


def comparison_table(postprocessor: str, records: dict, metrics=("fpr95", "auroc", "aupr_in", "aupr_out")) -> Table:
    """One postprocessor, rows = OOD sets + average, a column group per method (vanilla vs SeTAR side by side).

    ``records``: ``{method: RunRecord}`` evaluated on the same benchmark. With several methods only FPR95 and
    AUROC are shown per method, as in the paper's tables (AUPR-In/Out stay in the stored runs), so that the table
    fits an 80-column terminal.
    """
    from oodbench.results.runs import fsood_of, order_std, protocol_text

    methods = list(records)
    first = records[methods[0]]
    multi = len(methods) > 1
    if multi:
        metrics = tuple(m for m in metrics if m in ("fpr95", "auroc"))
    params = ", ".join(f"{k}={v}" for k, v in first.postprocessor.get("params", {}).items())
    table = Table(title=f"{postprocessor}  ({params})" if params else postprocessor, title_justify="left")
    table.add_column("OOD set", style="bold", no_wrap=True)
    table.add_column("group", no_wrap=True)
    for method in methods:
        for m in metrics:
            table.add_column(f"{method}\n{HEADERS[m]}" if multi else HEADERS[m], justify="right", no_wrap=True)
    for name in first.metrics:
        if name == "average":
            table.add_section()
        cells = [name, first.ood_sets.get(name, "")]
        for method in methods:
            row = records[method].metrics[name]
            std = (stream_stds(records[method]) or {}).get(name)
            cells += [f"{100 * row[m]:.2f}" + (f" ± {100 * std[m]:.2f}" if (std or {}).get(m) is not None else "")
                      for m in metrics]
        table.add_row(*cells)
    fs_all = {m: fsood_of(r) for m, r in records.items()}
    if all(fs_all.values()):  # full-spectrum rows: OOD vs ID test + every csID set
        table.add_section()
        for name in fs_all[methods[0]]["metrics"]:
            cells = [f"{name} (FS)", first.ood_sets.get(name, "")]
            for method in methods:
                row = fs_all[method]["metrics"].get(name, {})
                cells += [_cell(row.get(m), order_std(records[method], f"fsood:{name}", m)) for m in metrics]
            table.add_row(*cells)
    accs = [(f"{m}: " if multi else "") + f"{100 * r.id_accuracy:.2f}"
            for m, r in records.items() if r.id_accuracy is not None]
    counts = first.counts
    csid = ""
    if all(fs_all.values()):
        csid = " | FS: ID test + csID " + ", ".join(
            f"{n} ({v['n']} images, accuracy "
            + "/".join(f"{100 * fs_all[m]['csid'][n]['accuracy']:.2f}" for m in methods
                       if fs_all[m]["csid"].get(n, {}).get("accuracy") is not None) + ")"
            for n, v in fs_all[methods[0]]["csid"].items()) + " as ID"
    table.caption = (f"{first.benchmark} | {first.backbone['name']} | {id_label(first.id_set)}: {counts['id']} images"
                     + (f" | ID accuracy {', '.join(accs)}" if accs else "") + csid
                     + " | FPR95: ID positive, nearest recall to 95%"
                     + (" | test-time score: mean ± std over stream orders ("
                        + "; ".join(dict.fromkeys(protocol_text(r).removeprefix("test-time: stream orders ")
                                                  for r in records.values() if protocol_text(r))) + ")"
                        if any(protocol_text(r) for r in records.values()) else ""))
    table.caption_justify = "left"
    return table
