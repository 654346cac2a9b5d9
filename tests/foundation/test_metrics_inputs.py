"""Inputs that make OOD metrics meaningless are refused (or warned about) before any number is computed."""

import json

import numpy as np
import pytest

from oodbench import metrics as M
from oodbench.cli import main


@pytest.mark.parametrize("id_s, ood_s, message", [
    ([0.3], [0.1, 0.2], r"ID scores: 1 value; OOD metrics need at least 2"),
    ([0.3, 0.4], {"far": [0.1]}, r"OOD set 'far' scores: 1 value"),
])
def test_evaluate_refuses_a_single_score(id_s, ood_s, message):
    ood = ood_s if isinstance(ood_s, dict) else {"o": ood_s}
    # what a single score gives: every metric is 0, 50 or 100 whatever the numbers
    one = M.ood_metrics([0.3], [0.1, 0.2])
    assert one["auroc"] == 1.0 and M.ood_metrics([0.15], [0.1, 0.2])["auroc"] == 0.5
    with pytest.raises(M.MetricInputError, match=message):
        M.evaluate(id_s, ood)


def test_nearest_reachable_recall():
    # by hand: 7 -> 7/7 (0.05 away) beats 6/7 (0.093); 10 -> 9/10 (in floats 0.95 - 0.9 < 1.0 - 0.95);
    # 12 -> 11/12 (0.033) beats 12/12 (0.05); 20 -> 19/20
    assert [M.nearest_recall(n) for n in (7, 10, 12, 20)] == [1.0, 0.9, pytest.approx(11 / 12), 0.95]
    # and it is where fpr95 actually sits: the ID recall at the chosen threshold
    rng = np.random.default_rng(0)
    for n in (7, 10, 12, 33):
        id_s, ood_s = rng.normal(1, 1, n), rng.normal(0, 1, 50)
        t = M.fpr95_threshold(id_s, ood_s)
        assert np.mean(id_s >= t) == pytest.approx(M.nearest_recall(n))


def test_read_named_scores_reports_the_column(tmp_path):
    from oodbench.scorefiles import read_named_scores

    (tmp_path / "a.csv").write_text("mcm_score\n1\n2\n")
    np.savez(tmp_path / "b.npz", energy=np.array([1.0, 2.0]))
    np.save(tmp_path / "c.npy", np.array([1.0, 2.0]))
    assert read_named_scores(tmp_path / "a.csv")[1] == "mcm_score"
    assert read_named_scores(tmp_path / "b.npz")[1] == "energy"
    values, name = read_named_scores(tmp_path / "c.npy", higher_is="ood")
    assert name is None and values.tolist() == [-1.0, -2.0]


def _write(tmp_path, id_col="mcm_score", ood_col="mcm_score", n_id=30, n_ood=25):
    rng = np.random.default_rng(0)
    id_s, ood_s = rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)
    (tmp_path / "id.csv").write_text(f"{id_col}\n" + "\n".join(map(str, id_s)) + "\n")
    (tmp_path / "ood.csv").write_text(f"{ood_col}\n" + "\n".join(map(str, ood_s)) + "\n")
    return id_s, ood_s


def _metrics(tmp_path, *extra):
    return main(["metrics", "--id", str(tmp_path / "id.csv"), "--ood", f"o={tmp_path / 'ood.csv'}",
                 "--out", str(tmp_path / "m.json"), *extra])


def test_metrics_command_refuses_differently_named_columns(tmp_path, capsys):
    _write(tmp_path, "mcm_score", "energy_score")
    assert _metrics(tmp_path) == 2
    err = capsys.readouterr().err
    assert "id.csv: 'mcm_score', ood.csv: 'energy_score'" in err and "--column" in err and "Traceback" not in err
    assert not (tmp_path / "m.json").exists()
    # the same name in both files is fine, and so is a plain .npy (which names nothing) next to a CSV
    id_s, ood_s = _write(tmp_path)
    assert _metrics(tmp_path) == 0
    got = json.loads((tmp_path / "m.json").read_text())["metrics"]["o"]["auroc"]
    assert got == pytest.approx(M.ood_metrics(id_s, ood_s)["auroc"])
    np.save(tmp_path / "ood.npy", ood_s)
    assert main(["metrics", "--id", str(tmp_path / "id.csv"), "--ood", f"o={tmp_path / 'ood.npy'}"]) == 0
    # --column names the score to read in every file
    (tmp_path / "id.csv").write_text("mcm_score,energy\n1,5\n2,6\n3,7\n")
    (tmp_path / "ood.csv").write_text("mcm_score\n0.5\n2.5\n")
    assert _metrics(tmp_path, "--column", "mcm_score") == 0
    got = json.loads((tmp_path / "m.json").read_text())["metrics"]["o"]
    assert got["auroc"] == pytest.approx(M.ood_metrics([1, 2, 3], [0.5, 2.5])["auroc"])


@pytest.mark.parametrize("n_id, n_ood, which", [(1, 5, "ID"), (5, 1, "OOD set 'o'")])
def test_metrics_command_refuses_a_single_score(tmp_path, capsys, n_id, n_ood, which):
    _write(tmp_path, n_id=n_id, n_ood=n_ood)
    assert _metrics(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"{which} scores: 1 value" in err and not (tmp_path / "m.json").exists()


def test_metrics_command_warns_when_fpr95_cannot_sit_at_95(tmp_path, capsys):
    _write(tmp_path, n_id=10)
    assert _metrics(tmp_path) == 0
    assert "only 10 ID scores: FPR95 is read at 90.0% ID recall" in " ".join(capsys.readouterr().err.split())
    _write(tmp_path, n_id=40)
    assert _metrics(tmp_path) == 0
    assert "ID scores" not in capsys.readouterr().err
