"""`oodbench plot`: the plotted data equals scikit-learn's; PNG and SVG files are valid; the plan map."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve
from store_helpers import save_run, synthetic_scores

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.results import ResultsStore
from oodbench.methods.setar.figures import plan_grid, plot_plan
from oodbench.reporting.plots import histogram_data, roc_data, thin_curve
from oodbench.results.runs import find_run


def _sk_roc(id_s, ood_s, drop):
    y = np.r_[np.ones(id_s.size), np.zeros(ood_s.size)]
    return roc_curve(y, np.r_[id_s, ood_s], drop_intermediate=drop)


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, and heavy ties
@pytest.mark.parametrize("drop", [True, False])
def test_roc_data_equals_sklearn(decimals, drop):
    s = synthetic_scores(5, decimals=decimals, n_id=700, n_ood=500)
    for name in ("near", "far"):
        fpr, tpr, thr = roc_data(s["id"], s[f"ood/{name}"], drop_intermediate=drop)
        ref_fpr, ref_tpr, ref_thr = _sk_roc(s["id"], s[f"ood/{name}"], drop)
        np.testing.assert_allclose(fpr, ref_fpr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(tpr, ref_tpr, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(thr, ref_thr)
        # the area under the drawn points is the AUROC of the stored scores
        y = np.r_[np.ones(s["id"].size), np.zeros(s[f"ood/{name}"].size)]
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, np.r_[s["id"], s[f"ood/{name}"]]))


def test_thin_curve_is_a_subset_that_keeps_the_ends():
    rng = np.random.default_rng(0)
    fpr, tpr, _ = roc_data(rng.normal(1, 1, 20000), rng.normal(0, 1, 20000))
    fx, ty = thin_curve(fpr, tpr)
    assert 4000 < fpr.size and fx.size < fpr.size
    assert (fx[0], ty[0], fx[-1], ty[-1]) == (fpr[0], tpr[0], fpr[-1], tpr[-1])
    pairs = set(zip(fpr.tolist(), tpr.tolist()))
    assert all(p in pairs for p in zip(fx.tolist(), ty.tolist()))
    gaps = np.maximum(np.diff(fx), np.diff(ty))
    assert gaps[:-1].min() >= 1 / 2000 - 1e-12  # every kept step is a visible one


def test_histogram_data_equals_numpy():
    s = synthetic_scores(4)
    edges, dens = histogram_data(s, bins=25)
    pooled = np.concatenate(list(s.values()))
    np.testing.assert_allclose(edges, np.linspace(pooled.min(), pooled.max(), 26))
    for k, v in s.items():
        counts, _ = np.histogram(v, bins=edges)
        np.testing.assert_allclose(dens[k], counts / (v.size * np.diff(edges)))


def _check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 300


def _check_svg(path, *texts):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    body = path.read_text()
    for t in texts:
        assert t in body, t


def test_plot_run_cli_writes_valid_png_and_svg(tmp_path, capsys):
    store = ResultsStore(tmp_path / "runs")
    s = synthetic_scores(9)
    run_id = save_run(store, s, method="setar",
                      plan={"name": "setar", "hash": "abcd", "prune": "minor",
                            "entries": [{"tower": "vision", "weight_type": "W_up", "layer": 2, "ratio": 0.3}]})
    assert main(["plot", run_id[:12], "--results-root", str(store.root)]) == 0
    figures = store.root / run_id / "figures"
    for stem in ("roc", "hist", "plan"):
        _check_png(figures / f"{stem}.png")
    auroc_far = 100 * find_run(store, run_id).record.metrics["far"]["auroc"]
    _check_svg(figures / "roc.svg", f"AUROC {auroc_far:.2f}", "higher = more in-distribution")
    _check_svg(figures / "hist.svg", "density", "higher = more in-distribution")
    _check_svg(figures / "plan.svg", "0.3")
    # the store still reads the run folder with its figures inside
    assert store.load(run_id).run_id == run_id and store.run_ids() == [run_id]

    out = tmp_path / "elsewhere"
    assert main(["plot", str(store.root / run_id), "--out", str(out), "--results-root", str(store.root)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["hist.png", "hist.svg", "plan.png", "plan.svg", "roc.png",
                                                     "roc.svg"]


def test_plot_errors_are_one_line(tmp_path, capsys):
    store = ResultsStore(tmp_path / "runs")
    s = synthetic_scores(1)
    from oodbench.metrics import evaluate
    from oodbench.results import RunRecord

    rec = RunRecord(benchmark="b", id_set="i", ood_sets={"near": "near"}, backbone={"name": "x"},
                    plan={"name": "none"}, postprocessor={"name": "p", "params": {}},
                    metrics=evaluate(s["id"], {"near": s["ood/near"]}), counts={"id": 1, "ood": {}})
    run_id = store.save(rec).name  # no scores.npz
    for argv, message in ((["plot", run_id], "no per-image scores"), (["plot", "nope"], "unknown run"),
                          (["plot"], "either a RUN or --plan")):
        assert main([*argv, "--results-root", str(store.root)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (store.root / run_id / "figures").exists()


def test_plan_grid_and_plot_plan(tmp_path):
    official = [["visual", "W_up", 11, 0.15], ["visual", "W_up", 9, 0.05], ["text", "W_up", 11, 0.25],
                ["text", "W_up", 0, 0], ["visual", "W_p", None, 0.1]]
    grid = plan_grid(official)
    assert grid.layers == [str(i) for i in range(12)] + ["proj"]
    assert grid.columns == [("vision", "W_up"), ("vision", "W_p"), ("text", "W_up")]
    expected = np.full((13, 3), np.nan)
    expected[11, 0], expected[9, 0], expected[11, 2], expected[0, 2], expected[12, 1] = 0.15, 0.05, 0.25, 0, 0.1
    np.testing.assert_array_equal(grid.ratios, expected)

    written = plot_plan({"entries": official, "prune": "minor"}, tmp_path / "fig" / "plan.png")
    assert sorted(p.name for p in written) == ["plan.png", "plan.svg"]
    _check_png(tmp_path / "fig" / "plan.png")
    _check_svg(tmp_path / "fig" / "plan.svg", "0.15", "0.25", "rank-reduction ratio")

    (tmp_path / "p.json").write_text('{"entries": [{"tower": "vision", "weight_type": "W_up", "layer": 1, "ratio": 0.2}]}')
    assert main(["plot", "--plan", str(tmp_path / "p.json"), "--out", str(tmp_path / "o")]) == 0
    _check_png(tmp_path / "o" / "p_ratios.png")
    with pytest.raises(UserError, match="unknown tower"):
        plan_grid([["audio", "W_up", 1, 0.1]])
    with pytest.raises(UserError, match="no entries"):
        plan_grid({"entries": []})
