"""``torchrun --nproc-per-node 2 -m oodbench run|search`` on the embedded digits benchmark (gloo, CPU), against
``python -m oodbench`` in one process with the same thread count.

Extraction: the feature caches hold the same files with the same bytes and the stored runs the same scores and
metrics (ID test: 300 images in batches of 64, which 2 processes do not divide evenly). Search: the same plan and
the same loss for every candidate. A rank that fails: every rank prints one line naming it, the command exits
non-zero, and nothing that looks complete is left (no stored run, no plan).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dist_helpers import torchrun, tree_bytes

pytestmark = pytest.mark.slow  # each command starts interpreters that import torch: tens of seconds on 2 cores

RUN = ["run", "--post", "mcm,glmcm", "--batch-size", "64", "-q"]
SEARCH = ["search", "--benchmark", "digits", "--backbone", "test_clip_tiny", "--searcher", "les",
          "--ratios", "0,0.004,0.2,0.21,0.4", "--topk", "1", "--lambda", "0.1", "-q"]


def _dirs(tmp: Path, name: str) -> list[str]:
    return ["--cache-dir", str(tmp / name / "cache"), "--results-root", str(tmp / name / "runs")]


def _runs(root: Path) -> dict[str, tuple[dict, dict]]:
    out = {}
    for folder in sorted(root.iterdir()):
        record = json.loads((folder / "result.json").read_text())
        with np.load(folder / "scores.npz") as z:
            scores = {k: z[k] for k in z.files}
        out[f"{record['plan']['name']}/{record['postprocessor']['name']}"] = (record, scores)
    return out


def test_run_on_two_processes_writes_what_one_process_writes(tmp_path):
    one = torchrun(0, [*RUN, *_dirs(tmp_path, "one")])
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(2, [*RUN, *_dirs(tmp_path, "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = tree_bytes(tmp_path / "one" / "cache"), tree_bytes(tmp_path / "two" / "cache")
    assert any(k.endswith("full.npy") or "shard_" in k for k in a) and a == b  # same keys, files, bytes
    ra, rb = _runs(tmp_path / "one" / "runs"), _runs(tmp_path / "two" / "runs")
    assert sorted(ra) == sorted(rb) == ["none/glmcm", "none/mcm"]  # one stored run per (method, score), once
    for key, (rec_a, sc_a) in ra.items():
        rec_b, sc_b = rb[key]
        assert sorted(sc_a) == sorted(sc_b)
        for name in sc_a:
            assert sc_a[name].tobytes() == sc_b[name].tobytes(), (key, name)
        assert rec_a["metrics"] == rec_b["metrics"] and rec_a["counts"] == rec_b["counts"]
        assert rec_a["extra"]["world_size"] == 1 and rec_b["extra"]["world_size"] == 2
        assert rec_b["counts"]["id"] == 300


def _candidates(folder: Path) -> list[dict]:
    with open(folder / "search_candidates.csv") as f:
        return list(csv.DictReader(f))


def test_search_on_two_processes_gives_the_single_process_plan_and_losses(tmp_path):
    one = torchrun(0, [*SEARCH, *_dirs(tmp_path, "one"), "--out", str(tmp_path / "one" / "plan")])
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(2, [*SEARCH, *_dirs(tmp_path, "two"), "--out", str(tmp_path / "two" / "plan")])
    assert two.returncode == 0, two.stderr[-3000:]
    pa, pb = (json.loads((tmp_path / n / "plan" / "plan.json").read_text()) for n in ("one", "two"))
    assert pa == pb  # entries, prune strategy and search settings
    ca, cb = _candidates(tmp_path / "one" / "plan"), _candidates(tmp_path / "two" / "plan")
    assert len(ca) == len(cb) > 10
    for x, y in zip(ca, cb):
        for col in ("step", "tower", "weight_type", "layer", "ratio", "removed_rank", "computed", "best_so_far"):
            assert x[col] == y[col], col
        for col in ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent"):
            assert abs(float(x[col]) - float(y[col])) <= 1e-6, (col, x, y)
    # 0.21 removes as many components as 0.2 (the same model, not run again); 0.004 removes none
    assert any(x["computed"] == "False" and int(x["removed_rank"]) > 0 for x in ca)
    assert any(x["computed"] == "False" and float(x["ratio"]) == 0.004 for x in ca)
    steps = []
    for n in ("one", "two"):
        with open(tmp_path / n / "plan" / "search_steps.csv") as f:
            steps.append(list(csv.DictReader(f)))
    assert len(steps[0]) == len(steps[1]) > 0
    for x, y in zip(*steps):  # the ranks' shares run in other matrix shapes: losses equal to float32 rounding
        assert x.keys() == y.keys()
        for col in x:
            try:
                assert abs(float(x[col]) - float(y[col])) <= 1e-6, (col, x, y)
            except ValueError:
                assert x[col] == y[col], col
    info = json.loads((tmp_path / "two" / "plan" / "search_info.json").read_text())
    assert info["world_size"] == 2


def _one_line_on_every_rank(proc, rank: int) -> None:
    lines = [line for line in proc.stderr.splitlines() if f"rank {rank} of 2 failed" in line]
    assert proc.returncode != 0 and len(lines) >= 2, proc.stderr[-3000:]  # rank 0's and rank 1's own line
    assert all("OODBENCH_FAIL_RANK" in line and "error:" in line for line in lines)
    assert "Traceback" not in "\n".join(lines)


def test_a_failing_rank_fails_the_run_and_nothing_is_stored(tmp_path):
    proc = torchrun(2, [*RUN, *_dirs(tmp_path, "x")], env={"OODBENCH_FAIL_RANK": "0", "OODBENCH_FAIL_PHASE": "score"})
    _one_line_on_every_rank(proc, 0)
    runs = tmp_path / "x" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_a_failing_rank_fails_the_search_and_no_plan_is_written(tmp_path):
    out = tmp_path / "x" / "plan"
    proc = torchrun(2, [*SEARCH, *_dirs(tmp_path, "x"), "--out", str(out)],
                    env={"OODBENCH_FAIL_RANK": "1", "OODBENCH_FAIL_PHASE": "search"})
    _one_line_on_every_rank(proc, 1)
    assert not out.exists()
    assert not list((tmp_path / "x" / "cache").rglob("plan.json"))
