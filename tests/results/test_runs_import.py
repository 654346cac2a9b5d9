"""`oodbench runs import`: score files of other code become runs with the same metrics; nothing written on error."""

import hashlib
import json

import numpy as np
import pytest

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.metrics import evaluate
from oodbench.results import ResultsStore
from oodbench.results.importer import import_run


def _write_setar_style(tmp_path, column="mcm_score"):
    """Official-SeTAR-like dumps: one CSV per split, scores negated (higher = OOD), ties included."""
    rng = np.random.default_rng(7)
    id_s = np.round(rng.normal(2, 1, 400), 2)
    near = np.round(rng.normal(1, 1, 250), 2)
    far = np.round(rng.normal(-1, 2, 300), 2)
    for name, s in (("ImageNet", id_s), ("near", near), ("far", far)):
        (tmp_path / f"scores_{name}.csv").write_text(f"{column}\n" + "\n".join(repr(float(-v)) for v in s) + "\n")
    return id_s, near, far


def _import_argv(tmp_path, *extra):
    return ["runs", "import", "--id", str(tmp_path / "scores_ImageNet.csv"),
            "--ood", f"near={tmp_path / 'scores_near.csv'}", "--ood", f"far={tmp_path / 'scores_far.csv'}",
            "--higher-is", "ood", "--backbone", "clip_vit_b16", "--benchmark", "adhoc", "--method", "setar",
            "--post", "mcm", "--group", "near=near", "--param", "tau=1.0",
            "--results-root", str(tmp_path / "runs"), *extra]


def test_import_equals_metrics_command_and_evaluate(tmp_path, capsys):
    id_s, near, far = _write_setar_style(tmp_path)
    assert main(_import_argv(tmp_path)) == 0
    capsys.readouterr()
    store = ResultsStore(tmp_path / "runs")
    (run_id,) = store.run_ids()
    rec = store.load(run_id)

    # same numbers as `oodbench metrics` on the same files ...
    assert main(["metrics", "--id", str(tmp_path / "scores_ImageNet.csv"),
                 "--ood", f"near={tmp_path / 'scores_near.csv'}", "--ood", f"far={tmp_path / 'scores_far.csv'}",
                 "--higher-is", "ood", "--out", str(tmp_path / "m.json")]) == 0
    via_metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert rec.metrics == via_metrics
    # ... and as evaluate() on the un-negated scores
    ref = evaluate(id_s, {"near": near, "far": far})
    for name in ("near", "far", "average"):
        for m, v in ref[name].items():
            assert rec.metrics[name][m] == pytest.approx(v, abs=1e-12), (name, m)

    # stored scores are higher = ID, the record says where they came from
    scores = store.scores(run_id)
    np.testing.assert_allclose(scores["id"], id_s)
    np.testing.assert_allclose(scores["ood/far"], far)
    imp = rec.extra["import"]
    assert imp["higher_is"] == "ood" and "negated" in imp["orientation"]
    digest = hashlib.sha256((tmp_path / "scores_near.csv").read_bytes()).hexdigest()
    assert imp["files"]["ood"]["near"]["sha256"] == digest
    assert imp["files"]["id"]["path"].endswith("scores_ImageNet.csv")
    assert rec.ood_sets == {"near": "near", "far": "far"}
    assert rec.method == "setar" and rec.backbone["name"] == "clip_vit_b16" and rec.benchmark == "adhoc"
    assert rec.postprocessor == {"name": "mcm", "params": {"tau": 1.0}, "aps": None}
    assert rec.counts == {"id": 400, "ood": {"near": 250, "far": 300}, "skipped": {}}
    # the store's own loader and filters see it
    assert [r.run_id for r in store.runs(method="setar", benchmark="adhoc")] == [run_id]


def test_import_npy_npz_mixed_with_explicit_column(tmp_path):
    rng = np.random.default_rng(1)
    id_s, ood = rng.normal(1, 1, 80), rng.normal(0, 1, 60)
    np.savez(tmp_path / "id.npz", energy=id_s, msp=id_s * 2)
    np.savez(tmp_path / "ood.npz", energy=ood, msp=ood * 2)
    path = import_run(ResultsStore(tmp_path / "runs"), tmp_path / "id.npz", {"ood": tmp_path / "ood.npz"},
                      benchmark="adhoc", backbone="clip_vit_b16", method="none", postprocessor="energy",
                      column="energy")
    rec = ResultsStore(path.parent).load(path.name)
    assert rec.metrics["ood"]["auroc"] == pytest.approx(evaluate(id_s, {"o": ood})["o"]["auroc"])
    assert rec.extra["import"]["higher_is"] == "id" and rec.extra["import"]["column"] == "energy"


@pytest.mark.parametrize("mutate, extra, message", [
    (None, ["--ood", "gone=/nonexistent/scores.csv"], "score file not found"),
    ("rename_far", [], "name their columns differently"),
    (None, ["--column", "energy"], "no column 'energy'"),
    (None, ["--group", "far=middle"], "near or far"),
    (None, ["--group", "nosuch=near"], "no OOD set 'nosuch'"),
    (None, ["--ood", "average=x.csv"], "reserved"),
    ("text_value", [], "is not a number"),
])
def test_import_errors_write_nothing(tmp_path, capsys, mutate, extra, message):
    _write_setar_style(tmp_path)
    if mutate == "rename_far":
        text = (tmp_path / "scores_far.csv").read_text().replace("mcm_score", "energy_score", 1)
        (tmp_path / "scores_far.csv").write_text(text)
    if mutate == "text_value":
        (tmp_path / "scores_near.csv").write_text("mcm_score\n1.0\nabc\n")
    assert main(_import_argv(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    root = tmp_path / "runs"
    assert not root.exists() or list(root.iterdir()) == []


def test_differing_columns_accepted_with_column(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "id.csv").write_text("a,b\n" + "\n".join(f"{x},{-x}" for x in rng.normal(1, 1, 30)) + "\n")
    (tmp_path / "ood.csv").write_text("b\n" + "\n".join(str(x) for x in rng.normal(0, 1, 30)) + "\n")
    store = ResultsStore(tmp_path / "runs")
    with pytest.raises(UserError, match="several columns"):
        import_run(store, tmp_path / "id.csv", {"o": tmp_path / "ood.csv"}, benchmark="adhoc", backbone="resnet50",
                   method="none", postprocessor="msp")
    import_run(store, tmp_path / "id.csv", {"o": tmp_path / "ood.csv"}, benchmark="adhoc", backbone="resnet50",
               method="none", postprocessor="msp", column="b")
    assert len(store.run_ids()) == 1


def test_import_with_plan_records_it(tmp_path):
    _write_setar_style(tmp_path)
    plan = {"entries": [["visual", "W_up", 11, 0.15], ["text", "W_up", 11, 0.25], ["visual", "W_up", 10, 0]],
            "prune": "minor"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(_import_argv(tmp_path, "--plan", str(tmp_path / "plan.json"))) == 0
    store = ResultsStore(tmp_path / "runs")
    rec = store.load(store.run_ids()[0])
    assert rec.plan["name"] == "setar" and len(rec.plan["hash"]) == 16
    assert [e["ratio"] for e in rec.plan["entries"]] == [0.15, 0.25, 0]
