"""`oodbench tables` rendering: cells found in a results store built here, Markdown / CSV / LaTeX in the paper's
layout, missing and blocked cells, mean ± std over seeds, the run matching rules, the paper-vs-ours view."""

import csv
import io
import json
from pathlib import Path

import pytest

from table_helpers import record

from oodbench.results import ResultsStore
from oodbench.paper import Cell, RunSpec, TableSpec
from oodbench.papers.setar.experiments import paper_experiments
from oodbench.reporting.tables import (RunIndex, build_table, compare_with_paper, comparison_csv, matches, to_csv,
                                     to_json, to_latex, to_markdown, write_table)

PAPER_DIR = Path(__file__).resolve().parents[2] / "papers" / "setar" / "data"


def rows(a_fpr, a_auc, b_fpr, b_auc):
    return {"A": {"fpr95": a_fpr, "auroc": a_auc}, "B": {"fpr95": b_fpr, "auroc": b_auc},
            "average": {"fpr95": (a_fpr + b_fpr) / 2, "auroc": (a_auc + b_auc) / 2}}


def small_table():
    van = (RunSpec.make("bench", "clip_b", "mcm"),)
    setar = (RunSpec.make("bench", "clip_b", "mcm", "setar", {"lam": 0.05}),)
    ft = tuple(RunSpec.make("bench", "clip_b", "mcm", "setar-ft", seed=s) for s in (3, 4, 5))
    lora = tuple(RunSpec.make("bench", "clip_b", "mcm", "lora", seed=s) for s in (3, 4, 5))
    cells = []
    for label, runs in (("Vanilla", van), ("SeTAR", setar), ("SeTAR+FT", ft), ("LoRA", lora)):
        for col in ("A", "B", "C", "Average"):
            for m in ("FPR95", "AUROC"):
                if col == "C":
                    cells.append(Cell(("ID", "MCM Score", label), col, m, na=True))
                else:
                    cells.append(Cell(("ID", "MCM Score", label), col, m, runs, "average" if col == "Average" else col))
    return TableSpec("t_small", "A small table", ("ID set", "Score", "Method"), tuple(cells), caption="cap.")


@pytest.fixture()
def store(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    s.save(record(rows(0.3012, 0.9, 0.5, 0.8), run_id="van"))
    s.save(record(rows(0.20, 0.95, 0.40, 0.85), method="setar", options={"lam": 0.05}, run_id="setar"))
    # an older run of the same spec with other numbers: the newest must win
    s.save(record(rows(0.9, 0.1, 0.9, 0.1), method="setar", options={"lam": 0.05}, run_id="setar-old",
                  time="2025-01-01T00:00:00+00:00"))
    for seed, fpr in zip((3, 4, 5), (0.40, 0.42, 0.44)):
        s.save(record(rows(fpr, 0.9, fpr, 0.9), method="setar-ft", seed=seed, run_id=f"ft{seed}"))
    for seed in (3, 5):  # LoRA: one seed is missing
        s.save(record(rows(0.5, 0.9, 0.5, 0.9), method="lora", seed=seed, run_id=f"lora{seed}"))
    return s


EXPECTED_MD = """\
### A small table

| ID set | Score | Method | A FPR95↓ | A AUROC↑ | B FPR95↓ | B AUROC↑ | C FPR95↓ | C AUROC↑ | Average FPR95↓ | Average AUROC↑ |
|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|
| ID | MCM Score | Vanilla | 30.12 | 90.00 | 50.00 | 80.00 | - | - | 40.06 | 85.00 |
|  |  | SeTAR | 20.00 | 95.00 | 40.00 | 85.00 | - | - | 30.00 | 90.00 |
|  |  | SeTAR+FT | 42.00 ± 1.63 | 90.00 ± 0.00 | 42.00 ± 1.63 | 90.00 ± 0.00 | - | - | 42.00 ± 1.63 | 90.00 ± 0.00 |
|  |  | LoRA | missing (2/3) | missing (2/3) | missing (2/3) | missing (2/3) | - | - | missing (2/3) | missing (2/3) |
"""


def test_markdown_csv_latex_from_a_store(store):
    result = build_table(small_table(), RunIndex.from_store(store))
    md = to_markdown(result)
    assert md.startswith(EXPECTED_MD)
    assert "`missing`: no stored run" in md and "`-`: not applicable" in md and "cap." in md
    # population std of 40, 42, 44 = sqrt(8/3) = 1.633
    assert result.cell(("ID", "MCM Score", "SeTAR+FT"), "A", "FPR95").std == pytest.approx((8 / 3) ** 0.5)
    assert result.cell(("ID", "MCM Score", "SeTAR"), "A", "FPR95").run_ids == ("setar",)

    table = list(csv.reader(io.StringIO(to_csv(result))))
    assert table[0] == ["ID set", "Score", "Method", "A FPR95", "A AUROC", "B FPR95", "B AUROC", "C FPR95", "C AUROC",
                        "Average FPR95", "Average AUROC"]
    assert table[1] == ["ID", "MCM Score", "Vanilla", "30.12", "90.00", "50.00", "80.00", "-", "-", "40.06", "85.00"]
    assert table[3][3] == "42.00 ± 1.63" and table[4][3] == "missing (2/3)"

    tex = to_latex(result)
    assert r"\multicolumn{2}{c}{A} & \multicolumn{2}{c}{B}" in tex
    assert r"FPR95$\downarrow$ & AUROC$\uparrow$" in tex
    assert r" &  & SeTAR+FT & 42.00 $\pm$ 1.63 & 90.00 $\pm$ 0.00" in tex
    assert "ID & MCM Score & Vanilla & 30.12 & 90.00 & 50.00 & 80.00 & - & - & 40.06 & 85.00 \\\\" in tex
    assert tex.count("\\begin{tabular}{lll" + "r" * 8 + "}") == 1

    data = json.loads(to_json(result))
    cell = next(c for c in data["cells"] if c["row"][-1] == "LoRA" and c["column"] == "A" and c["metric"] == "FPR95")
    assert cell["status"] == "missing" and cell["found"] == 2 and cell["needed"] == 3 and cell["value"] is None


def test_a_missing_run_is_missing_never_the_paper(tmp_path):
    spec = next(t for e in paper_experiments("neurips") if e.id == "table1" for t in e.tables)
    result = build_table(spec, RunIndex([]))
    texts = {v.text() for v in result.values}
    assert texts == {"missing", "-"}
    published = {row["value"] for row in csv.DictReader(open(PAPER_DIR / "neurips" / "table01.csv", encoding="utf-8"))}
    assert not any(p and p in to_markdown(result) for p in published if p not in ("",))
    written = write_table(result, tmp_path)
    assert {p.name for p in written} >= {f"{spec.key}.md", f"{spec.key}.csv", f"{spec.key}.tex", f"{spec.key}.json",
                                         f"{spec.key}_vs_paper.md", f"{spec.key}_vs_paper.csv"}
    assert "40.24" in (tmp_path / f"{spec.key}_vs_paper.md").read_text()  # the paper column of the comparison


def test_paper_vs_ours_values():
    spec = next(t for e in paper_experiments("neurips") if e.id == "table1" for t in e.tables)
    s = "ImageNet1K"
    metrics = {n: {"fpr95": 0.30, "auroc": 0.90} for n in ("iNaturalist", "SUN", "Places", "Texture")}
    metrics["average"] = {"fpr95": 0.4000, "auroc": 0.9100}
    index = RunIndex([record(metrics, benchmark="imagenet1k", backbone="clip_vit_b16", method="setar", post="mcm")])
    result = build_table(spec, index)
    comps = [c for c in compare_with_paper(result) if c.row == (s, "MCM Score", "SeTAR")]
    by = {(c.column, c.metric): c for c in comps}
    # the paper's SeTAR+MCM row, read here from the CSV with the csv module
    paper = {(r["column"], r["metric"]): r["value"] for r in csv.DictReader(open(PAPER_DIR / "neurips" / "table01.csv",
                                                                                   encoding="utf-8"))
             if r["row"] == "ImageNet1K / MCM Score / SeTAR"}
    assert by[("Average", "FPR95")].diff == pytest.approx(40.00 - float(paper[("Average", "FPR95")]))
    assert by[("Average", "AUROC")].diff == pytest.approx(91.00 - float(paper[("Average", "AUROC")]))
    assert by[("iNaturalist", "FPR95")].diff == pytest.approx(30.00 - float(paper[("iNaturalist", "FPR95")]))
    assert ("ImageNet22K", "FPR95") not in by  # not applicable in both
    lines = list(csv.DictReader(io.StringIO(comparison_csv(comps))))
    avg = next(r for r in lines if r["column"] == "Average" and r["metric"] == "FPR95")
    assert avg["ours"] == "40.0000" and avg["paper"] == paper[("Average", "FPR95")] and avg["paper_row"].endswith("SeTAR")
    # the vanilla row is compared with the paper's re-run (∗), not the cited (†) one
    van = [c for c in compare_with_paper(result) if c.row == (s, "MCM Score", "Vanilla MCM")]
    assert {c.paper_row for c in van} == {"ImageNet1K / MCM Score / Vanilla MCM∗"}
    assert all(c.diff is None and c.ours.status == "missing" for c in van)


def test_run_matching_rules():
    spec = RunSpec.make("b", "clip", "mcm", "setar", {"lam": 0.05})
    base = dict(benchmark="b", backbone="clip", method="setar", post="mcm", metrics={})
    assert matches(record(options={"lam": 0.05, "searcher": "setar-s", "seed": 7}, **base), spec)  # default value given
    assert not matches(record(options={"lam": 0.05, "searcher": "les"}, **base), spec)
    assert not matches(record(options={"lam": 0.1}, **base), spec)
    assert not matches(record(options={"lam": 0.05}, pretrained="/w/merged.safetensors", **base), spec)
    assert matches(record(options={"lam": 0.05}, pretrained="/w/x.pt", **base), spec.with_(pretrained="/w/x.pt"))
    assert not matches(record(options={"lam": 0.05}, params={"tau": 2.0}, **base), spec)
    assert matches(record(options={"lam": 0.05}, params={"tau": 2.0}, **base),
                   RunSpec.make("b", "clip", "mcm", "setar", {"lam": 0.05}, params={"tau": 2.0}))
    assert not matches(record(options={"lam": 0.05}, aps={"chosen": {}}, **base), spec)
    assert not matches(record(options={"lam": 0.05}, precision="bf16", **base), spec)
    assert not matches(record(options={"plan_file": "p.json"}, **base), RunSpec.make("b", "clip", "mcm", "setar"))
    # seeds: a seeded spec takes only that seed; the random prune also needs the plan's seed
    rnd = RunSpec.make("b", "clip", "mcm", "setar", {"prune": "random"}, seed=3)
    assert matches(record(options={"prune": "random", "seed": 3}, seed=3, plan={"hash": "x", "seed": 3}, **base), rnd)
    assert not matches(record(options={"prune": "random"}, seed=3, plan={"hash": "x", "seed": 5}, **base), rnd)
    assert not matches(record(options={"prune": "random", "seed": 4}, seed=4, plan={"hash": "x", "seed": 4}, **base),
                       rnd)
    # per-step runs match on the prefix they record
    step = RunSpec.make("b", "clip", "mcm", "setar", {"weight_type": "W_q"}, step=2)
    prefix = {"hash": "x", "search": {"prefix": {"steps": 2, "of": "y", "options": {"weight_type": "W_q"}}}}
    assert matches(record(options={"plan_file": "s2.json"}, plan=prefix, **base), step)
    assert not matches(record(options={"plan_file": "s2.json"}, plan=prefix, **base), step.with_(step=3))
    assert not matches(record(options={"plan_file": "s2.json"}, plan=prefix, **base),
                       RunSpec.make("b", "clip", "mcm", "setar", {"weight_type": "W_q"}))


def test_every_paper_cell_of_ours_exists_in_the_paper():
    """Every mapped cell of both versions names a real (row, column, metric) of its paper table."""
    from oodbench.papers.setar.published import load_paper_table

    for version in ("neurips", "arxiv"):
        for e in paper_experiments(version):
            for t in e.tables:
                assert t.paper is not None and t.paper[0] == version, t.key
                keys = {(c["row"], c["column"], c["metric"]) for c in load_paper_table(version, t.paper[1])}
                mapped = {(c.paper_row, c.paper_column, c.metric) for c in t.cells if c.paper_row and not c.na}
                assert mapped, t.key
                unknown = mapped - keys
                assert not unknown, (version, t.key, sorted(unknown)[:3])
