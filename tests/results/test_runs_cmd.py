"""`oodbench runs list|show|compare`: finding runs by id / prefix / path, filters, order, side-by-side values."""

import json

import numpy as np
import pytest
from store_helpers import save_run, synthetic_scores

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.metrics import evaluate
from oodbench.results import ResultsStore
from oodbench.results.runs import compare, find_run, list_runs


@pytest.fixture()
def store(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    ids = {
        "a": save_run(s, synthetic_scores(1), time="2026-01-01T10:00:00+00:00", run_id="20260101-aaa111-mcm"),
        "b": save_run(s, synthetic_scores(2, shift=2.0), method="setar", time="2026-01-02T10:00:00+00:00",
                      run_id="20260102-bbb222-mcm"),
        "c": save_run(s, synthetic_scores(3, sets=("near",)), backbone="swin", post="energy",
                      benchmark="other", time="2026-01-03T10:00:00+00:00", run_id="20260102-bbc333-energy"),
    }
    return s, ids


def test_find_run_by_id_prefix_and_path(store):
    s, ids = store
    assert find_run(s, ids["a"]).run_id == ids["a"]
    assert find_run(s, "20260101").run_id == ids["a"]
    assert find_run(s, "20260102-bbb").run_id == ids["b"]
    folder = s.root / ids["c"]
    assert find_run(ResultsStore(s.root.parent / "elsewhere"), str(folder)).run_id == ids["c"]
    assert find_run(s, str(folder / "result.json")).record.postprocessor["name"] == "energy"
    with pytest.raises(UserError, match="ambiguous.*20260102-bbb222-mcm.*20260102-bbc333-energy"):
        find_run(s, "20260102-bb")
    with pytest.raises(UserError, match="unknown run 'zzz'"):
        find_run(s, "zzz")


def test_list_filters_limit_and_newest_first(store):
    s, ids = store
    assert [r.run_id for r in list_runs(s)] == [ids["c"], ids["b"], ids["a"]]
    assert [r.run_id for r in list_runs(s, benchmark="bench")] == [ids["b"], ids["a"]]
    assert [r.run_id for r in list_runs(s, method="setar")] == [ids["b"]]
    assert [r.run_id for r in list_runs(s, post="ener*")] == [ids["c"]]
    assert [r.run_id for r in list_runs(s, backbone="clip_*", limit=1)] == [ids["b"]]
    with pytest.raises(UserError, match="--limit"):
        list_runs(s, limit=0)


def test_compare_values_and_differences_to_first(store):
    s, ids = store
    recs = [s.load(ids["a"]), s.load(ids["b"]), s.load(ids["c"])]
    data = compare(recs, ("fpr95", "auroc"))
    assert list(data) == ["near", "far", "average"]
    sa, sb = synthetic_scores(1), synthetic_scores(2, shift=2.0)
    ref_a = evaluate(sa["id"], {"near": sa["ood/near"], "far": sa["ood/far"]})
    ref_b = evaluate(sb["id"], {"near": sb["ood/near"], "far": sb["ood/far"]})
    cell = data["far"][1]["auroc"]
    assert cell.value == pytest.approx(ref_b["far"]["auroc"])
    assert cell.diff == pytest.approx(ref_b["far"]["auroc"] - ref_a["far"]["auroc"])
    assert data["far"][0]["auroc"].diff is None
    assert data["far"][2]["fpr95"].value is None and data["far"][2]["fpr95"].diff is None  # run c has no 'far'
    assert data["average"][1]["fpr95"].diff == pytest.approx(ref_b["average"]["fpr95"] - ref_a["average"]["fpr95"])


def _cli(s, *argv):
    return main([*argv, "--results-root", str(s.root)])


def test_cli_list_show_compare(store, capsys):
    s, ids = store
    assert _cli(s, "runs", "list", "--benchmark", "bench") == 0
    text = capsys.readouterr().out
    assert ids["a"] in text and ids["b"] in text and ids["c"] not in text
    rec_b = s.load(ids["b"])
    assert f"{100 * rec_b.metrics['average']['auroc']:.2f}" in text
    assert text.index(ids["b"]) < text.index(ids["a"])

    assert _cli(s, "runs", "show", "20260102-bbb") == 0
    text = capsys.readouterr().out
    for name in ("near", "far", "average"):
        for m in ("fpr95", "fpr95_oodpos", "auroc", "aupr_in", "aupr_out"):
            assert f"{100 * rec_b.metrics[name][m]:.2f}" in text
    assert "w0" in text and "setar" in text and "code" in text

    assert _cli(s, "runs", "compare", ids["a"], ids["b"]) == 0
    text = capsys.readouterr().out
    rec_a = s.load(ids["a"])
    d = 100 * (rec_b.metrics["near"]["fpr95"] - rec_a.metrics["near"]["fpr95"])
    assert f"({d:+.2f})" in text and ids["a"] in text and ids["b"] in text


@pytest.mark.parametrize("argv, message", [
    (["runs", "show", "nope"], "unknown run 'nope'"),
    (["runs", "show", "20260102-bb"], "ambiguous"),
    (["runs", "compare", "20260101"], "at least two runs"),
    (["runs", "compare", "20260101", "20260102-bbb", "--metrics", "fpr99"], "unknown metric"),
    (["runs", "list", "--limit", "0"], "--limit"),
])
def test_cli_errors_are_one_line(store, capsys, argv, message):
    s, _ = store
    assert _cli(s, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_show_reads_runs_written_by_the_store_loader(store):
    s, ids = store
    data = json.loads((s.root / ids["a"] / "result.json").read_text())
    assert data["run_id"] == ids["a"]
    assert np.array_equal(find_run(s, ids["a"]).scores()["id"], synthetic_scores(1)["id"])
