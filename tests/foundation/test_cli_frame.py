"""The CLI frame: help, version, common options after the subcommand, `metrics`, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oodbench import __version__
from oodbench.cli import main
from oodbench.metrics import evaluate

EXAMPLE = Path(__file__).resolve().parents[2] / "oodbench" / "assets" / "example_scores"


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out


def test_console_script_help():
    exe = Path(sys.executable).with_name("oodbench")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "metrics" in proc.stdout and "list" in proc.stdout


def _files(tmp_path):
    rng = np.random.default_rng(3)
    id_s, near, far = rng.normal(2, 1, 300), rng.normal(1, 1, 200), rng.normal(-1, 2, 250)
    (tmp_path / "id.csv").write_text("score\n" + "\n".join(map(str, -id_s)) + "\n")
    np.save(tmp_path / "near.npy", -near)
    np.savez(tmp_path / "far.npz", score=-far)
    return id_s, near, far


def test_metrics_command_table_and_outputs(tmp_path, capsys):
    id_s, near, far = _files(tmp_path)
    args = ["metrics", "--id", str(tmp_path / "id.csv"), "--ood", f"near={tmp_path / 'near.npy'}",
            "--ood", f"far={tmp_path / 'far.npz'}", "--column", "score", "--higher-is", "ood",
            "--cache-dir", str(tmp_path / "c"), "--seed", "3", "--device", "cpu", "-q"]
    assert main(args + ["--out", str(tmp_path / "m.json")]) == 0
    table = capsys.readouterr().out
    ref = evaluate(id_s, {"near": near, "far": far})
    assert f"{100 * ref['near']['auroc']:.2f}" in table and f"{100 * ref['average']['fpr95']:.2f}" in table
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["metrics"]["far"]["fpr95_oodpos"] == pytest.approx(ref["far"]["fpr95_oodpos"])
    assert data["higher_is"] == "ood" and data["counts"]["ood"]["near"] == 200
    assert main(args + ["--out", str(tmp_path / "m.csv")]) == 0
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "ood_set,fpr95,fpr95_oodpos,auroc,aupr_in,aupr_out"
    assert lines[3].startswith("average,") and len(lines) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ood", "near"], "expects NAME=PATH"),
        (["--ood", "x=missing.npy"], "score file not found"),
        (["--column", "nope"], "no column 'nope'"),
        (["--out", "table.txt"], "use a .csv or .json"),
    ],
)
def test_metrics_errors_write_nothing(tmp_path, capsys, extra, message):
    _files(tmp_path)
    out = tmp_path / "out.json"
    args = ["metrics", "--id", str(tmp_path / "id.csv"), "--ood", f"near={tmp_path / 'near.npy'}"]
    if "--column" not in extra:
        args += ["--column", "score"]
    if "--out" not in extra:
        args += ["--out", str(out)]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_bundled_example_runs(capsys):
    rc = main(["metrics", "--id", str(EXAMPLE / "id.csv"), "--ood", f"near={EXAMPLE / 'ood_near.csv'}",
               "--ood", f"far={EXAMPLE / 'ood_far.csv'}", "--column", "mcm_score", "--higher-is", "ood"])
    assert rc == 0 and "average" in capsys.readouterr().out


def test_list_command(capsys):
    assert main(["list", "benchmarks"]) == 0
    assert "oodbench registry" in capsys.readouterr().out
    assert main(["list", "colours"]) == 2
