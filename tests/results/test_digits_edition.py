"""The committed digits edition (results/digits) is what `oodbench tables --benchmark digits` computes: Table 1's
analogue is regenerated here from scratch (empty cache and results store: the vanilla runs, a SeTAR search and
two feature extractions on digits_clip, about half a minute on 2 CPU cores) and compared with the committed files.

Tolerance: the regenerated values must equal the committed ones within 1e-6 (x100 units) and the Markdown must be
identical. The digits pixels are built in exact integer arithmetic and a CPU fp32 run is deterministic (same
plan, same scores), so the only slack allowed is for float formatting in the JSON; a last printed digit that moved
would mean the computation changed (model, data, search or metric code) and the edition must be regenerated with
`oodbench tables --benchmark digits`.
"""

import json
from pathlib import Path

import pytest

from oodbench.cli import main

DIGITS = Path(__file__).resolve().parents[2] / "results" / "digits"


def test_digits_table1_regenerates_from_scratch(tmp_path):
    committed = json.loads((DIGITS / "table1.json").read_text(encoding="utf-8"))
    out = tmp_path / "out"
    rc = main(["tables", "--benchmark", "digits", "--table", "table1", "--out", str(out), "--results-root",
               str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "-q"])
    assert rc == 0
    fresh = json.loads((out / "table1.json").read_text(encoding="utf-8"))
    assert fresh["weights"] == committed["weights"], \
        "digits_clip changed since results/digits was written: regenerate it with `oodbench tables --benchmark digits`"
    assert len(fresh["cells"]) == len(committed["cells"]) == 48
    for new, old in zip(fresh["cells"], committed["cells"]):
        assert (new["row"], new["column"], new["metric"]) == (old["row"], old["column"], old["metric"])
        assert new["status"] == old["status"] == "ok"
        assert new["value"] == pytest.approx(old["value"], abs=1e-6), (new["row"], new["column"], new["metric"])
    assert (out / "table1.md").read_text(encoding="utf-8") == (DIGITS / "table1.md").read_text(encoding="utf-8")
    assert (out / "table1.csv").read_text(encoding="utf-8") == (DIGITS / "table1.csv").read_text(encoding="utf-8")
