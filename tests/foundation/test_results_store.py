"""The results store: atomic run folders, round trips, filtering."""

import json
import os

import numpy as np
import pytest

from oodbench.metrics import CONVENTIONS, evaluate
from oodbench.results import ResultsStore, RunRecord


def make_record(benchmark="digits", post="mcm", plan="none", backbone="test_clip_tiny"):
    rng = np.random.default_rng(0)
    rows = evaluate(rng.normal(1, 1, 50), {"near": rng.normal(0, 1, 40)})
    return RunRecord(
        benchmark=benchmark, id_set="digits test", ood_sets={"near": "near"},
        backbone={"name": backbone, "pretrained": None, "weights_hash": "abc"},
        plan={"name": plan, "hash": "none", "entries": []},
        postprocessor={"name": post, "params": {"temperature": 1.0}},
        metrics=rows, counts={"id": 50, "ood": {"near": 40}, "skipped": {}}, seed=0, device="cpu",
    )


def test_save_load_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "runs")
    rec = make_record()
    scores = {"id": np.arange(5.0), "ood/near": np.arange(3.0)}
    path = store.save(rec, scores)
    data = json.loads((path / "result.json").read_text())
    for key in ("benchmark", "id_set", "ood_sets", "backbone", "plan", "postprocessor", "metrics", "counts",
                "precision", "conventions", "code_version", "time", "seed", "device", "schema", "run_id"):
        assert key in data, key
    assert data["conventions"] == CONVENTIONS and data["code_version"].startswith("oodbench ")
    loaded = store.load(path.name)
    assert loaded == rec
    got = store.scores(path.name)
    np.testing.assert_array_equal(got["id"], scores["id"])
    np.testing.assert_array_equal(got["ood/near"], scores["ood/near"])


def test_filtering(tmp_path):
    store = ResultsStore(tmp_path)
    store.save(make_record(post="mcm"))
    store.save(make_record(post="glmcm", plan="setar"))
    store.save(make_record(benchmark="voc", post="mcm"))
    assert len(store.runs()) == 3
    assert {r.postprocessor["name"] for r in store.runs(benchmark="digits")} == {"mcm", "glmcm"}
    assert [r.method for r in store.runs(method="setar")] == ["setar"]
    assert len(store.runs(postprocessor="*mcm")) == 3
    with pytest.raises(ValueError, match="cannot filter"):
        store.runs(colour="red")


def test_interrupted_write_leaves_no_run(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save(make_record(), {"id": np.zeros(2)})
    assert os.listdir(tmp_path) == []  # neither the run nor its temporary folder
    assert store.runs() == []


def test_half_written_folders_are_ignored(tmp_path):
    store = ResultsStore(tmp_path)
    store.save(make_record())
    (tmp_path / ".tmp-abc").mkdir()
    (tmp_path / ".tmp-abc" / "result.json").write_text("{")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "result.json").write_text("not json")
    assert len(store.runs()) == 1
