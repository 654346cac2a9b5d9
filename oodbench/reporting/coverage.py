"""Which table cells of the registered papers a stored run fills, or why it fills none (``oodbench runs import``
says so after each import)."""

from __future__ import annotations

from oodbench.paper import Paper, get_paper
from oodbench.registry import names
from oodbench.reporting.tables import _full_params, _same, lacks, matches, run_value
from oodbench.results.importer import DEFAULT_PRECISION
from oodbench.results.store import RunRecord


def _papers() -> list[tuple[str, Paper]]:
    """``(edition, paper)`` of every registered paper, those with published tables first (registry order)."""
    papers = [get_paper(n) for n in names("papers")]
    return [(p.version, p) for p in sorted(papers, key=lambda p: p.published_data is None)]


def cells_filled(record: RunRecord) -> list[tuple[str, str, int]]:
    """Which table cells ``record`` takes part in: ``(edition, table key, number of cells)`` over every registered
    paper (edition: its ``version``; a seeded cell counts once it has the run of one of its seeds; a cell counts
    only when the run holds the value it reads: an Average needs every OOD set, Table 7 its accuracies)."""

    def fills(cell) -> bool:
        return (not cell.na and any(matches(record, r) for r in cell.runs)
                and not lacks(record, cell.source, run_value(record, cell.source, cell.metric)))

    out = []
    for edition, paper in _papers():
        for exp in paper.experiments():
            for table in exp.tables:
                n = sum(1 for c in table.cells if fills(c))
                if n:
                    out.append((edition, table.key, n))
    return out


def why_no_cell(record: RunRecord) -> str:
    """One line: why ``record`` fills no table cell (the closest spec's first difference)."""
    key = (record.benchmark, record.backbone.get("name"), record.method, record.postprocessor.get("name"))
    near = [r for _, paper in _papers() for e in paper.experiments() for r in e.runs()
            if (r.benchmark, r.backbone, r.method, r.post) == key]
    if not near:
        return (f"no table has a cell for {record.benchmark} / {record.backbone.get('name')} / {record.method} / "
                f"{record.postprocessor.get('name')}")
    if (record.precision or DEFAULT_PRECISION) != DEFAULT_PRECISION:
        return f"table cells take {DEFAULT_PRECISION} runs; this one is {record.precision}"
    params = record.postprocessor.get("params") or {}
    wanted = [r for r in near if _same(_full_params(r.post, r.params), params)]
    if not wanted:
        shown = sorted({", ".join(f"{k}={v}" for k, v in sorted(r.params.items())) or "the defaults" for r in near})
        return f"the table cells need {record.postprocessor.get('name')} with {' or '.join(shown)}"
    seeds = sorted({r.seed for r in wanted if r.seed is not None})
    if seeds and record.seed not in seeds and all(r.seed is not None for r in wanted):
        return f"the cells of these runs are per seed: import with --seed {', '.join(map(str, seeds))}"
    if not any(matches(record, r) for r in wanted):
        return ("the cells need method options, weights or a search prefix that the import does not record "
                "(`oodbench tables --dry-run` lists each cell's runs)")
    return ("the cells of these runs read values this run does not hold (an Average needs every OOD set of the "
            "benchmark; Table 7 needs --classify-accuracy / --id-accuracy)")
