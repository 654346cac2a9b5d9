"""`oodbench run` and `oodbench search` as a user runs them, on an ad-hoc benchmark of image folders."""

import json

import pytest

from oodbench.cli import main
from oodbench.results import ResultsStore


def _bench_args(d):
    return ["--backbone", "test_clip_tiny", "--id-test", str(d / "id_test"), "--id-val", str(d / "id_val"),
            "--ood", f"blobs={d / 'ood'}", "--classes", str(d / "classes.txt"),
            "--cache-dir", str(d / "cache"), "--results-root", str(d / "runs"), "-q"]


def test_run_prints_a_table_per_postprocessor_and_stores_runs(folders, capsys):
    assert main(["run", "--post", "mcm,maxlogit", *_bench_args(folders)]) == 0
    out = capsys.readouterr().out
    assert out.count("average") == 2 and "blobs" in out and "AUROC" in out
    runs = ResultsStore(folders / "runs").runs()
    assert sorted(r.postprocessor["name"] for r in runs) == ["maxlogit", "mcm"]
    assert all(r.benchmark == "adhoc" and r.counts["ood"] == {"blobs": 16} for r in runs)


@pytest.mark.parametrize("extra, message", [
    (["--post", "react"], "needs fc_bias, fc_weight, penultimate"),
    (["--post", "nope"], "unknown postprocessor 'nope'"),
    (["--plan", "plan.json"], "--plan is an option of method setar"),
    (["--benchmark", "voc"], "cannot be combined with the ad-hoc flags"),
])
def test_run_errors_are_one_line_and_store_nothing(folders, capsys, extra, message):
    assert main(["run", *_bench_args(folders), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert ResultsStore(folders / "runs").runs() == []


def test_search_then_run_with_the_plan(folders, capsys):
    out_dir = folders / "plan_out"
    assert main(["search", *_bench_args(folders), "--ratios", "0,0.2,0.4", "--topk", "1", "--lambda", "0.1",
                 "--out", str(out_dir)]) == 0
    for name in ("plan.json", "search_steps.csv", "search_candidates.csv", "search_log.json"):
        assert (out_dir / name).is_file(), name
    plan = json.loads((out_dir / "plan.json").read_text())
    assert plan["search"]["lambda"] == 0.1 and plan["search"]["top_k"] == 1
    steps = (out_dir / "search_steps.csv").read_text().splitlines()
    assert steps[0].startswith("step,tower,weight_type,layer,best_ratio,locoop_loss,loss_id,loss_ood,acc")
    assert len(steps) == 1 + 4  # test_clip_tiny: 2 vision + 2 text blocks
    capsys.readouterr()
    assert main(["run", "--post", "mcm", "--method", "setar", "--plan", str(out_dir / "plan.json"),
                 *_bench_args(folders)]) == 0
    table = capsys.readouterr().out
    assert "SeTAR" in table and "Vanilla" in table and "MCM" in table and "average" in table
    runs = ResultsStore(folders / "runs").runs()
    assert sorted(r.method for r in runs) == ["none", "setar"]
    assert {r.method: r.plan["hash"] for r in runs} == {"none": "none", "setar": plan["hash"]}


def test_param_sets_a_hyperparameter_and_is_recorded(folders, capsys):
    assert main(["run", "--post", "energy,mcm", "--param", "energy.temperature=0.1", "--param", "mcm.tau=2",
                 *_bench_args(folders)]) == 0
    params = {r.postprocessor["name"]: r.postprocessor["params"] for r in ResultsStore(folders / "runs").runs()}
    assert params == {"energy": {"temperature": 0.1}, "mcm": {"tau": 2}}
    assert main(["run", "--post", "mcm", "--param", "mcm.colour=1", *_bench_args(folders)]) == 2
    assert "invalid parameter 'colour'" in capsys.readouterr().err
    assert main(["run", "--post", "mcm", "--param", "energy.temperature=1", *_bench_args(folders)]) == 2
    assert "not among the postprocessors run" in capsys.readouterr().err


def test_unreadable_images_are_skipped_and_counted_or_fatal(folders, capsys):
    (folders / "ood" / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folders / "ood" / "images" / "empty.png").write_bytes(b"")
    assert main(["run", "--post", "mcm", *_bench_args(folders)]) == 0
    rec = ResultsStore(folders / "runs").runs()[0]
    assert rec.counts["ood"] == {"blobs": 16} and rec.counts["skipped"] == {"blobs": 2}
    assert sorted(p["path"].rsplit("/", 1)[-1] for p in rec.extra["skipped_files"]["blobs"]) == ["broken.png",
                                                                                               "empty.png"]
    capsys.readouterr()
    assert main(["run", "--post", "mcm", "--on-bad", "fail", *_bench_args(folders)]) == 2
    err = capsys.readouterr().err
    assert ("broken.png" in err or "empty.png" in err) and "Traceback" not in err


def test_seeds_run_each_seed_and_show_mean_and_std(folders, capsys):
    import numpy as np

    assert main(["run", "--post", "mcm", "--method", "setar", "--prune", "random", "--ratios", "0,0.3", "--topk", "2",
                 "--modality", "vision", "--seeds", "3,4", *_bench_args(folders)]) == 0
    out = capsys.readouterr().out
    runs = ResultsStore(folders / "runs").runs()
    setar = sorted((r for r in runs if r.method == "setar"), key=lambda r: r.seed)
    assert [r.seed for r in setar] == [3, 4] and [r.plan["seed"] for r in setar] == [3, 4]  # the prune seed follows
    assert sorted(r.seed for r in runs if r.method == "none") == [3, 4]
    auroc = [100 * r.metrics["average"]["auroc"] for r in setar]
    assert "±" in out and f"{np.mean(auroc):.2f}" in out and f"{np.std(auroc):.2f}" in out
    assert main(["run", "--post", "mcm", "--seeds", "3,x", *_bench_args(folders)]) == 2
    assert main(["run", "--post", "mcm", "--seeds", "3", "--seed", "1", *_bench_args(folders)]) == 2
