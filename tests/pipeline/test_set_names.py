"""`oodbench run` on an ad-hoc benchmark refuses reserved and path-like OOD set names (issue 19, finding 3): an OOD
folder named `average` used to store the mean over the sets in place of its own metrics."""

import pytest

from oodbench.cli import main
from oodbench.results import ResultsStore


def _args(d, *ood):
    return ["run", "--backbone", "test_clip_tiny", "--post", "mcm", "--id-test", str(d / "id_test"),
            "--classes", str(d / "classes.txt"), *[a for name in ood for a in ("--ood", f"{name}={d / 'ood'}")],
            "--cache-dir", str(d / "cache"), "--results-root", str(d / "runs"), "-q"]


@pytest.mark.parametrize("name", ["average", "Average", "../../x", "a/b", "<b>x</b>", "ID test"])
def test_run_refuses_the_name_and_stores_nothing(folders, capsys, name):
    assert main(_args(folders, name, "other")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oodbench run: error: --ood ") and len(err.splitlines()) == 1, err
    assert not (folders / "runs").exists()


def test_the_same_folder_under_two_valid_names_gets_its_own_metrics(folders):
    assert main(_args(folders, "near set (a)", "other")) == 0
    (rec,) = ResultsStore(folders / "runs").runs()
    assert set(rec.metrics) == {"near set (a)", "other", "average"}
    # the same images under both names: the same metrics, and the average is their mean, not a set's stand-in
    assert rec.metrics["near set (a)"] == rec.metrics["other"]
    assert rec.metrics["average"]["auroc"] == pytest.approx(rec.metrics["other"]["auroc"], abs=1e-12)
