"""Any method x CSP / AdaNeg in the tables, the experiment specs, the leaderboard and `oodbench runs`: a test-time
score's cells show the mean ± population std over its stream orders (from the run's per-order metrics), the
leaderboard says which rows are test-time and under which orders / batch size, and a full-spectrum evaluation
(``extra["fsood"]``) shows up as extra columns when a run carries one.

The stored runs are built here by hand: per-order metrics from synthetic scores through the metric code, the run's
metrics their mean, exactly what the pipeline stores for a test-time score (``oodbench.stream``). The expected
values are recomputed in the tests with plain Python (mean and population std written out)."""

import csv
import io
import math

import numpy as np
import pytest
from store_helpers import synthetic_scores

from oodbench.cli import main
from oodbench.metrics import METRICS, evaluate
from oodbench.registry import get
from oodbench.results import ResultsStore, RunRecord
from oodbench.papers.setar import experiments as E
from oodbench.paper import Cell, RunSpec, TableSpec
from oodbench.reporting.leaderboard import build, write
from oodbench.reporting.tables import RunIndex, build_table, to_json, to_markdown

SETS = ("near", "far")
ORDERS = (0, 1, 2)
LABELS = {"mcm": "MCM", "csp": "CSP", "adaneg": "AdaNeg"}


def _mean(xs):
    return sum(xs) / len(xs)


def _pstd(xs):
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def _rows(scores):
    ood = {k.removeprefix("ood/"): v for k, v in scores.items() if k.startswith("ood/")}
    rows = evaluate(scores["id"], ood)
    return rows


def make_record(post: str, method: str, shift: float, *, seed: int = 0, run_id: str, fsood=None) -> RunRecord:
    """A run as the pipeline stores it; an ``adaneg`` run carries ``extra["stream"]`` with three orders."""
    params = get("postprocessors", post)().get_params()
    extra = {}
    if getattr(get("postprocessors", post), "test_time", False):
        per_order = {str(o): _rows(synthetic_scores(100 * seed + o, shift=shift + 0.15 * o, sets=SETS))
                     for o in ORDERS}
        keys = list(per_order["0"])
        metrics = {k: {m: float(np.mean([per_order[str(o)][k][m] for o in ORDERS])) for m in METRICS} for k in keys}
        extra["stream"] = {"protocol": "one stream per OOD set", "seeds": list(ORDERS), "batch_size": 256,
                           "per_order": per_order,
                           "std": {k: {m: float(np.std([per_order[str(o)][k][m] for o in ORDERS])) for m in METRICS}
                                   for k in keys}}
    else:
        metrics = _rows(synthetic_scores(100 * seed + 7, shift=shift, sets=SETS))
    if fsood is not None:
        extra["fsood"] = fsood
    plan = {"name": method, "hash": "none" if method == "none" else "abcdef0123456789",
            "method": {"name": method, "options": {}}, "display_name": {"none": "Vanilla", "setar": "SeTAR"}[method]}
    return RunRecord(benchmark="bench", id_set="id", ood_sets={s: "far" for s in SETS},
                     backbone={"name": "clip_b", "pretrained": "openai", "weights_hash": "w"}, plan=plan,
                     postprocessor={"name": post, "display_name": LABELS[post], "params": params, "aps": None},
                     metrics=metrics, counts={"id": 120, "ood": {s: 90 for s in SETS}}, seed=seed,
                     time=f"2026-03-0{1 + len(run_id) % 8}T00:00:00+00:00", run_id=run_id, extra=extra)


# ----------------------------------------------------------------------------------------- experiment specs
def test_score_labels_come_from_the_registered_display_names():
    assert [E.score_label(p) for p in ("mcm", "glmcm", "neglabel", "csp", "adaneg", "ash_s")] == \
        ["MCM", "GL-MCM", "NegLabel", "CSP", "AdaNeg", "ASH-S"]
    assert E.score_label("not_registered_score") == "not_registered_score"
    assert not hasattr(E, "SCORE_LABELS")  # one source of labels: the postprocessors themselves


def test_digits_beyond_experiment_rows_and_runs():
    (exp,) = E.select(E.experiments("neurips", "digits"), "beyond")
    (table,) = exp.tables
    scores = [r[1] for r in table.rows()][::2]
    assert scores == ["MCM Score", "GL-MCM Score", "NegLabel Score", "CSP Score", "AdaNeg Score"]
    assert [r[2] for r in table.rows()] == ["Vanilla", "SeTAR"] * 5
    assert table.columns() == ["digits 6-9", "textures", "faces", "photos", "noise", "Average"]
    runs = exp.runs()
    assert {(r.method, r.post) for r in runs} == {(m, p) for m in ("none", "setar")
                                                 for p in ("mcm", "glmcm", "neglabel", "csp", "adaneg")}
    assert all(r.benchmark == "digits" and r.backbone == "digits_clip" and r.seed is None for r in runs)


# -------------------------------------------------------------------------------------------------- tables
def _beyond_table():
    cells = []
    for post in ("mcm", "csp", "adaneg"):
        for label, method in (("Vanilla", "none"), ("SeTAR", "setar")):
            runs = (RunSpec.make("bench", "clip_b", post, method),)
            for col in SETS + ("Average",):
                for m in ("FPR95", "AUROC"):
                    cells.append(Cell(("ID", f"{LABELS[post]} Score", label), col, m, runs,
                                      "average" if col == "Average" else col))
            cells.append(Cell(("ID", f"{LABELS[post]} Score", label), "FS Average", "FPR95", runs, "fsood:average"))
    return TableSpec("t_beyond", "beyond", ("ID set", "Score", "Method"), tuple(cells))


FS = {"csid": {"ImageNet-V2": {"n": 10000, "accuracy": 0.61}},
      "metrics": {"near": {"fpr95": 0.41, "auroc": 0.90}, "far": {"fpr95": 0.21, "auroc": 0.95},
                  "average": {"fpr95": 0.31, "auroc": 0.925}}}


@pytest.fixture()
def store(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    shifts = {("mcm", "none"): 1.2, ("mcm", "setar"): 1.4, ("csp", "none"): 2.2, ("csp", "setar"): 1.8,
              ("adaneg", "none"): 1.6, ("adaneg", "setar"): 2.6}
    for (post, method), shift in shifts.items():
        s.save(make_record(post, method, shift, run_id=f"{method}-{post}",
                           fsood=FS if (post, method) == ("csp", "setar") else None))
    return s


def test_table_cell_of_a_stored_adaneg_run_is_the_mean_and_std_over_its_orders(store):
    result = build_table(_beyond_table(), RunIndex.from_store(store))
    rec = store.load("setar-adaneg")
    per_order = rec.extra["stream"]["per_order"]
    for col, source in (("near", "near"), ("far", "far"), ("Average", "average")):
        for label, metric in (("FPR95", "fpr95"), ("AUROC", "auroc")):
            values = [100 * per_order[str(o)][source][metric] for o in ORDERS]
            v = result.cell(("ID", "AdaNeg Score", "SeTAR"), col, label)
            assert v.status == "ok" and v.run_ids == ("setar-adaneg",)
            assert v.value == pytest.approx(_mean(values), abs=1e-9)
            assert v.std == pytest.approx(_pstd(values), abs=1e-9) and v.std > 0
            assert v.spread == "stream orders"
    # a static score's cell of one run has no std
    v = result.cell(("ID", "CSP Score", "Vanilla"), "Average", "FPR95")
    assert v.std is None and v.spread == "" and v.value == pytest.approx(
        100 * store.load("none-csp").metrics["average"]["fpr95"])
    md = to_markdown(result)
    avg = result.cell(("ID", "AdaNeg Score", "SeTAR"), "Average", "FPR95")
    assert f"| {avg.value:.2f} ± {avg.std:.2f} |" in md
    assert "stream orders 0, 1, 2, batch 256" in md
    js = to_json(result)
    assert '"std_over": "stream orders"' in js and '"protocol": "test-time: stream orders 0, 1, 2, batch 256"' in js


def test_full_spectrum_source_reads_the_runs_fsood_metrics(store):
    result = build_table(_beyond_table(), RunIndex.from_store(store))
    assert result.cell(("ID", "CSP Score", "SeTAR"), "FS Average", "FPR95").value == pytest.approx(31.0)
    missing = result.cell(("ID", "CSP Score", "Vanilla"), "FS Average", "FPR95")
    assert missing.status == "missing"  # no full-spectrum evaluation in that run: never filled otherwise


# ---------------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_ranks_and_labels_csp_adaneg_mcm_under_setar_and_none(store, tmp_path):
    board = build(store, metric="fpr95")
    rows = board["bench"]
    assert len(rows) == 6
    avg = {r.run.run_id: store.load(r.run.run_id).metrics["average"]["fpr95"] for r in rows}
    assert [r.run.run_id for r in rows] == sorted(avg, key=avg.get)  # ranked by the mean over orders
    assert [r.rank for r in rows] == [1, 2, 3, 4, 5, 6]
    by_id = {r.run.run_id: r for r in rows}
    for run_id, row in by_id.items():
        method, post = run_id.split("-")
        assert row.test_time == (post == "adaneg")
        assert row.protocol() == ("test-time: stream orders 0, 1, 2, batch 256" if post == "adaneg" else "static")

    write(board, tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    lines = {line.split("`")[1]: line for line in md.splitlines() if line.startswith("| ") and "`" in line}
    for run_id, line in lines.items():
        method, post = run_id.split("-")
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]  # **bold**: the column's best
        assert cells[2] == {"none": "Vanilla", "setar": "SeTAR"}[method] and cells[3] == LABELS[post]
        rec = store.load(run_id)
        if post == "adaneg":
            std = _pstd([rec.extra["stream"]["per_order"][str(o)]["average"]["fpr95"] for o in ORDERS])
            assert cells[6] == f"{100 * rec.metrics['average']['fpr95']:.2f} ± {100 * std:.2f}"
        else:
            assert cells[6] == f"{100 * rec.metrics['average']['fpr95']:.2f}"
    assert "Test-time scores (protocol column)" in md and "same orders and batch size" in md

    table = list(csv.DictReader(io.StringIO((tmp_path / "out" / "leaderboard.csv").read_text())))
    for r in table:
        rec = store.load(r["run_id"])
        if r["postprocessor"] == "adaneg":
            std = _pstd([rec.extra["stream"]["per_order"][str(o)]["average"]["auroc"] for o in ORDERS])
            assert (r["test_time"], r["stream_seeds"], r["stream_batch"]) == ("1", "0 1 2", "256")
            assert float(r["avg_auroc_std"]) == pytest.approx(100 * std, abs=5e-5)
        else:
            assert (r["test_time"], r["stream_seeds"], r["avg_auroc_std"]) == ("0", "", "")
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert "test-time: stream orders 0, 1, 2, batch 256" in page and 'data-key="protocol"' in page


def test_leaderboard_full_spectrum_columns_only_when_a_run_has_them(store, tmp_path):
    write(build(store), tmp_path / "with")
    table = list(csv.DictReader(io.StringIO((tmp_path / "with" / "leaderboard.csv").read_text())))
    by_id = {r["run_id"]: r for r in table}
    assert float(by_id["setar-csp"]["fs_avg_fpr95"]) == pytest.approx(31.0)
    assert float(by_id["setar-csp"]["csid:ImageNet-V2:accuracy"]) == pytest.approx(61.0)
    assert by_id["none-csp"]["fs_avg_fpr95"] == ""
    md = (tmp_path / "with" / "leaderboard.md").read_text()
    assert "FS avg FPR95↓" in md and "csID ImageNet-V2 acc↑" in md and "| 31.00 | 92.50 | 61.00 |" in md

    plain = ResultsStore(tmp_path / "plain")
    plain.save(make_record("mcm", "none", 1.0, run_id="only"))
    write(build(plain), tmp_path / "without")
    assert "fs_avg" not in (tmp_path / "without" / "leaderboard.csv").read_text()
    assert "FS avg" not in (tmp_path / "without" / "leaderboard.md").read_text()


# ------------------------------------------------------------------------------------------- oodbench runs
def test_runs_list_show_compare_give_the_stream_spread(store, capsys):
    rec = store.load("none-adaneg")
    orders = rec.extra["stream"]["per_order"]
    std = _pstd([orders[str(o)]["average"]["fpr95"] for o in ORDERS])
    text = f"{100 * rec.metrics['average']['fpr95']:.2f} ± {100 * std:.2f}"
    root = ["--results-root", str(store.root)]

    assert main(["runs", "list", *root]) == 0
    listed = capsys.readouterr().out
    assert text in listed and "stream orders" in " ".join(listed.split())

    assert main(["runs", "show", "none-adaneg", *root]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "test-time: stream orders 0, 1, 2, batch 256" in shown and text in shown

    assert main(["runs", "show", "setar-csp", *root]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "ImageNet-V2 (10000, accuracy 61.00)" in shown and "Full-spectrum" in shown and "±" not in shown

    assert main(["runs", "compare", "none-mcm", "none-adaneg", *root]) == 0
    compared = " ".join(capsys.readouterr().out.split())
    assert text in compared and "± std over the orders" in compared


# ------------------------------------------------------------------------------------------------- sweeps
def test_sweep_aggregate_of_one_adaneg_run_shows_the_std_over_its_orders(store):
    from types import SimpleNamespace

    from oodbench.orchestration.sweep import GridPoint, SweepResult
    from oodbench.reporting.aggregate import aggregate, aggregate_csv, aggregate_markdown

    results = [SweepResult(GridPoint(), 0, SimpleNamespace(record=store.load(i), method=i.split("-")[0],
                                                          postprocessor=i.split("-")[1]))
               for i in ("setar-adaneg", "setar-mcm")]
    rows = {r.postprocessor: r for r in aggregate(results)}
    ada, mcm = rows["adaneg"], rows["mcm"]
    orders = store.load("setar-adaneg").extra["stream"]["per_order"]
    for m in ("fpr95", "auroc"):
        assert ada.std["average"][m] == pytest.approx(_pstd([orders[str(o)]["average"][m] for o in ORDERS]))
        assert ada.mean["average"][m] == pytest.approx(_mean([orders[str(o)]["average"][m] for o in ORDERS]))
    assert (ada.spread, ada.n_spread) == ("stream orders", 3) and (mcm.spread, mcm.n_spread) == ("seeds", 1)
    md = aggregate_markdown([ada, mcm])
    assert f"{100 * ada.mean['average']['fpr95']:.2f} ± {100 * ada.std['average']['fpr95']:.2f}" in md
    assert f"| {100 * mcm.mean['average']['fpr95']:.2f} |" in md and "over its stream orders" in md
    long = list(csv.DictReader(io.StringIO(aggregate_csv([ada, mcm]))))
    assert {r["std_over"] for r in long if r["postprocessor"] == "adaneg"} == {"stream orders"}


def test_full_spectrum_of_a_test_time_run_shows_the_std_over_its_fs_streams(tmp_path, capsys):
    """A test-time score's full-spectrum evaluation records its own streams (``fsood["stream"]["per_order"]``, ID test
    + csID against each OOD set): the FS cells show their mean ± std, as the pipeline's ``full_spectrum`` stores it."""
    per_order = {str(o): _rows(synthetic_scores(50 + o, shift=1.0 + 0.2 * o, sets=SETS)) for o in ORDERS}
    fs_metrics = {k: {m: _mean([per_order[str(o)][k][m] for o in ORDERS]) for m in METRICS} for k in per_order["0"]}
    fs = {"csid": {"shifted": {"n": 50, "accuracy": None}}, "metrics": fs_metrics,
          "stream": {"seeds": list(ORDERS), "per_order": per_order}}
    s = ResultsStore(tmp_path / "runs")
    s.save(make_record("adaneg", "none", 1.5, run_id="fs-adaneg", fsood=fs))
    spec = (RunSpec.make("bench", "clip_b", "adaneg"),)
    table = TableSpec("t", "t", ("Score",), (Cell(("AdaNeg",), "FS", "AUROC", spec, "fsood:average"),))
    (v,) = build_table(table, RunIndex.from_store(s)).values
    values = [100 * per_order[str(o)]["average"]["auroc"] for o in ORDERS]
    assert v.value == pytest.approx(_mean(values)) and v.std == pytest.approx(_pstd(values))

    write(build(s), tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    fpr = [100 * per_order[str(o)]["average"]["fpr95"] for o in ORDERS]
    assert f"| {_mean(fpr):.2f} ± {_pstd(fpr):.2f} |" in md and "csID shifted acc↑" in md

    assert main(["runs", "show", "fs-adaneg", "--results-root", str(s.root)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"{_mean(fpr):.2f} ± {_pstd(fpr):.2f}" in shown and "shifted (50, accuracy —)" in shown
