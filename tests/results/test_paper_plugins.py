"""Papers as plugins: a paper defined in a test file renders its table from a store built here; NegLabel's table
(the second built-in paper) renders with --no-run from stored runs, beside its published numbers; one store fills
several papers' tables; `oodbench list papers` lists them."""

import csv
import statistics
import textwrap

import numpy as np
import pytest

from oodbench.cli import main
from oodbench.paper import PUBLISHED_FIELDS, get_paper, read_csv
from oodbench.registry import names, registry
from oodbench.reporting.tables import _full_params
from oodbench.results import ResultsStore
from store_helpers import save_run, synthetic_scores

DIGITS_SETS = ("digits 6-9", "textures", "faces", "photos", "noise")

PLUGIN = '''
from pathlib import Path

from oodbench.paper import Cell, Experiment, Paper, RunSpec, TableSpec
from oodbench.registry import register

SETS = {sets!r}


@register("papers", "mini-paper", aliases=("mini",))
class MiniPaper(Paper):
    """A two-row paper table on the digits benchmark (a test plugin)."""

    title = "Mini paper"
    version = "mini-paper"

    def experiments(self, variant="published"):
        self.check_variant(variant)
        cells = []
        for label, post in (("Max logit", "mcm"), ("Energy", "energy")):
            runs = (RunSpec.make("digits", "digits_clip", post),)
            for col in (*SETS, "Average"):
                for metric in ("FPR95", "AUROC"):
                    cells.append(Cell((label,), col, metric, runs, "average" if col == "Average" else col,
                                      paper_row=label, paper_column=col))
        return [Experiment("main", "Main table", (TableSpec("table01_main", "Main", ("Score",), tuple(cells),
                                                            ("mini-paper", 1)),))]

    def published_root(self, root=None):
        return Path(__file__).parent / "numbers"
'''


@pytest.fixture
def clean_papers(monkeypatch):
    """Plugins registered in a test leave the papers registry as it was."""
    reg = registry("papers")
    names("papers")  # the built-ins (and entry points) are known before the copy
    monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(reg, "_aliases", dict(reg._aliases))


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_paper_plugin_in_a_file_renders_its_table_from_a_store_built_here(tmp_path, clean_papers, capsys):
    plugin = tmp_path / "plug" / "mini_paper.py"
    plugin.parent.mkdir()
    plugin.write_text(textwrap.dedent(PLUGIN.format(sets=DIGITS_SETS)), encoding="utf-8")
    (plugin.parent / "numbers").mkdir()
    with open(plugin.parent / "numbers" / "table01.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(PUBLISHED_FIELDS)
        w.writerow(["mini-paper", 1, "Max logit", "Average", "FPR95", "12.50", "", "", ""])
    store = ResultsStore(tmp_path / "runs")
    stored = {}
    for k, post in enumerate(("mcm", "energy")):
        scores = synthetic_scores(k, sets=DIGITS_SETS)
        save_run(store, scores, benchmark="digits", backbone="digits_clip", post=post,
                 params=_full_params(post, {}))
        stored[post] = scores
    out = tmp_path / "out"
    rc = main(["tables", "--plugin", str(plugin), "--paper", "mini", "--no-run", "--out", str(out),
               "--results-root", str(tmp_path / "runs")])
    assert rc == 0, capsys.readouterr()
    assert "mini-paper" in names("papers")

    # ours: x100 of the metrics, recomputed here with scikit-learn from the stored scores
    from sklearn.metrics import roc_auc_score

    table = {(r["row"], r["column"], r["metric"]): r for r in _rows(out / "table01_main_vs_paper.csv")}
    for label, post in (("Max logit", "mcm"), ("Energy", "energy")):
        s = stored[post]
        aurocs = []
        for name in DIGITS_SETS:
            y = np.r_[np.ones(len(s["id"])), np.zeros(len(s[f"ood/{name}"]))]
            auroc = 100 * roc_auc_score(y, np.r_[s["id"], s[f"ood/{name}"]])
            aurocs.append(auroc)
            assert float(table[(label, name, "AUROC")]["ours"]) == pytest.approx(auroc, abs=1e-3)
        assert float(table[(label, "Average", "AUROC")]["ours"]) == pytest.approx(statistics.mean(aurocs), abs=1e-3)
    # the paper's number, from the plugin's own data, beside ours
    cell = table[("Max logit", "Average", "FPR95")]
    assert cell["paper"] == "12.50"
    assert float(cell["diff"]) == pytest.approx(float(cell["ours"]) - 12.50)
    index = (out / "index.md").read_text(encoding="utf-8")
    assert index.startswith("# Mini paper tables") and "oodbench tables --paper mini-paper" in index


def test_a_plugin_paper_is_listed(tmp_path, clean_papers, capsys):
    plugin = tmp_path / "mini_paper.py"
    plugin.write_text(textwrap.dedent(PLUGIN.format(sets=DIGITS_SETS)), encoding="utf-8")
    assert main(["list", "papers", "--plugin", str(plugin)]) == 0
    said = capsys.readouterr().out
    for name in ("setar", "setar-arxiv", "digits", "neglabel", "mini-paper"):
        assert name in said


def test_unknown_paper_is_a_one_line_error(tmp_path, capsys):
    assert main(["tables", "--paper", "nosuch", "--no-run", "--out", str(tmp_path / "o"),
                 "--results-root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown paper 'nosuch'" in err and "neglabel" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------- the second paper
def _neglabel_store(tmp_path):
    """The two vanilla CLIP-B/16 ImageNet-1K runs NegLabel's Table 1 needs, with chosen metrics (fractions)."""
    from table_helpers import record

    store = ResultsStore(tmp_path / "runs")
    sets = ("iNaturalist", "SUN", "Places", "Texture")
    chosen = {"mcm": [0.31, 0.38, 0.45, 0.58], "neglabel": [0.02, 0.21, 0.36, 0.44]}
    for post, fprs in chosen.items():
        metrics = {n: {"fpr95": f, "auroc": 1 - f / 4} for n, f in zip(sets, fprs)}
        metrics["average"] = {m: float(np.mean([metrics[n][m] for n in sets])) for m in ("fpr95", "auroc")}
        rec = record(metrics, benchmark="imagenet1k", backbone="clip_vit_b16", post=post,
                     params=_full_params(post, {}), pretrained=None)
        store.save(rec)
    return chosen


def test_neglabel_table_renders_with_no_run_beside_its_published_numbers(tmp_path, capsys):
    chosen = _neglabel_store(tmp_path)
    out = tmp_path / "neglabel"
    assert main(["tables", "--paper", "neglabel", "--no-run", "--out", str(out),
                 "--results-root", str(tmp_path / "runs")]) == 0
    rows = {(r["row"], r["column"], r["metric"]): r for r in _rows(out / "table01_zero_shot_vs_paper.csv")}
    published = {(r["row"], r["column"], r["metric"]): r["value"]
                 for r in read_csv(get_paper("neglabel").published_root() / "table01.csv", PUBLISHED_FIELDS)}
    assert len(rows) == len(published) == 20
    for (row, column, metric), value in published.items():
        ours_column = "Texture" if column == "Textures" else column
        cell = rows[(f"ImageNet-1K / {row}", ours_column, metric)]
        assert cell["paper"] == value and cell["paper_row"] == row
    post = {"MCM": "mcm", "NegLabel": "neglabel"}
    for row, key in post.items():
        fprs = chosen[key]
        assert float(rows[(f"ImageNet-1K / {row}", "SUN", "FPR95")]["ours"]) == pytest.approx(100 * fprs[1])
        assert float(rows[(f"ImageNet-1K / {row}", "Average", "FPR95")]["ours"]) == pytest.approx(100 * np.mean(fprs))
        assert float(rows[(f"ImageNet-1K / {row}", "Texture", "AUROC")]["ours"]) == pytest.approx(100 * (1 - fprs[3] / 4))
    md = (out / "table01_zero_shot.md").read_text(encoding="utf-8")
    assert "Paper: NegLabel (Jiang et al., ICLR 2024), Table 1." in md


def test_one_store_fills_several_papers_tables(tmp_path, capsys):
    """The same vanilla MCM run fills NegLabel's MCM row and SeTAR's Table 1 vanilla MCM cells."""
    chosen = _neglabel_store(tmp_path)
    for paper in ("neglabel", "neurips"):
        assert main(["tables", "--paper", paper, "--table", "1", "--no-run", "--out", str(tmp_path / paper),
                     "--results-root", str(tmp_path / "runs")]) == 0
    import json

    setar = {(tuple(c["row"]), c["column"], c["metric"]): c for c in
             json.loads((tmp_path / "neurips" / "table01_training_free.json").read_text(encoding="utf-8"))["cells"]}
    neg = {(r["row"], r["column"], r["metric"]): r for r in _rows(tmp_path / "neglabel" / "table01_zero_shot_vs_paper.csv")}
    sets = ("iNaturalist", "SUN", "Places", "Texture")
    for k, name in enumerate(sets):
        want = 100 * chosen["mcm"][k]
        assert float(neg[("ImageNet-1K / MCM", name, "FPR95")]["ours"]) == pytest.approx(want)
        assert setar[(("ImageNet1K", "MCM Score", "Vanilla MCM"), name, "FPR95")]["value"] == pytest.approx(want)
    said = capsys.readouterr().out
    assert "cell(s) filled" in said


def test_neglabel_published_averages_are_the_means_of_their_rows():
    cells = read_csv(get_paper("neglabel").published_root() / "table01.csv", PUBLISHED_FIELDS)
    by = {(r["row"], r["column"], r["metric"]): float(r["value"]) for r in cells}
    for row in ("MCM", "NegLabel"):
        for metric in ("FPR95", "AUROC"):
            four = [by[(row, c, metric)] for c in ("iNaturalist", "SUN", "Places", "Textures")]
            assert round(sum(four) / 4 + 1e-9, 2) == by[(row, "Average", metric)]


def test_the_python_api_writes_any_registered_papers_tables(tmp_path):
    import oodbench

    chosen = _neglabel_store(tmp_path)
    written = oodbench.tables("neglabel", out=tmp_path / "api", results_root=tmp_path / "runs")
    assert tmp_path / "api" / "table01_zero_shot_vs_paper.csv" in written
    rows = {(r["row"], r["column"], r["metric"]): r for r in _rows(tmp_path / "api" / "table01_zero_shot_vs_paper.csv")}
    assert float(rows[("ImageNet-1K / NegLabel", "Places", "FPR95")]["ours"]) == pytest.approx(100 * chosen["neglabel"][2])
    assert rows[("ImageNet-1K / NegLabel", "Places", "FPR95")]["paper"] == "35.59"
