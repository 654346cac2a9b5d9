"""``device_check.py --scale tiny --device cpu`` runs every part on the CPU and writes a summary that says what it
measured (default suite: the command the device window depends on must not need debugging there)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import device_check  # noqa: E402


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("device-check")
    threads = torch.get_num_threads()
    try:
        rc = device_check.main(["--scale", "tiny", "--device", "cpu", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return rc, json.loads((out / "device_check.json").read_text()), (out / "device_check.md").read_text()


def test_every_part_runs_and_the_summary_says_what_it_measured(summary):
    rc, s, md = summary
    failed = {k: v.get("error") for k, v in s["parts"].items() if v["status"] != "ok"}
    assert rc == 0 and not failed, failed
    assert list(s["parts"]) == list(device_check.PARTS)
    env = s["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["cpu_count"] >= 1
    assert all(p["seconds"] > 0 for p in s["parts"].values())

    ext = s["parts"]["extraction"]["result"]
    for precision in ("fp32", "bf16"):
        e = ext[precision]
        assert e["images"] == 8 and e["bare_seconds"] > 0 and 0.2 < e["ratio"] < 100, e

    dec = s["parts"]["decode"]["result"]
    # digits: 5 OOD sets x (MCM, GL-MCM); on a CPU both paths decode with libjpeg: only the resize differs
    assert len(dec["scores"]) == 10 and {r["score"] for r in dec["scores"]} == {"mcm", "glmcm"}
    assert 0 <= dec["pixels"]["max_levels"] <= 8 and dec["limit"] == 8

    main = s["parts"]["main_table"]["result"]
    assert main["counts"]["val"] == 4 and main["test_images"] == 6 + 4 * 2
    assert set(main["seconds"]) >= {"search", "vanilla", "setar"}

    eff = s["parts"]["search_efficiency"]["result"]
    log = eff["search_log_efficiency"]
    assert log["unavoidable_flops"] > 0 and 0 < log["matmul_fraction"] < 2, log
    prof = eff["profile"]
    assert sum(c["share"] for c in prof["categories"].values()) == pytest.approx(1.0)
    assert prof["categories"]["GEMM"]["seconds"] > 0 and set(prof["regions"]) == {"setar.tower", "setar.loss",
                                                                                   "setar.weights"}

    multi = s["parts"]["multi_device_search"]["result"]
    one, two = multi["worlds"]
    assert [one["procs"], two["procs"]] == [1, 2] and one["same_plan"] and two["same_plan"]
    assert [r["images"] for r in one["ranks"]] == [12] and [r["images"] for r in two["ranks"]] == [6, 6]
    assert one["total_flops"] == two["total_flops"] and two["work_share_of_largest_rank"] == pytest.approx(0.5, abs=0.1)
    assert two["max_loss_diff"] <= 1e-6
    for name in device_check.PARTS:
        assert f"| {name} | ok |" in md
    assert "Profile of one search step" in md


def test_a_failed_part_is_recorded_and_the_others_run(tmp_path, monkeypatch):
    def broken(scale, device, work):
        raise RuntimeError("CUDA out of memory\nwhile testing")

    def fine(scale, device, work):
        return {"skipped": "nothing to do"}

    monkeypatch.setattr(device_check, "part_decode", broken)
    monkeypatch.setattr(device_check, "part_multi_device_search", fine)
    rc = device_check.main(["--scale", "tiny", "--device", "cpu", "--out", str(tmp_path),
                            "--parts", "decode", "multi_device_search"])
    s = json.loads((tmp_path / "device_check.json").read_text())
    assert rc == 1
    assert s["parts"]["decode"]["status"] == "failed"
    assert s["parts"]["decode"]["error"] == "RuntimeError: CUDA out of memory while testing"
    assert s["parts"]["multi_device_search"] == {**s["parts"]["multi_device_search"], "status": "ok",
                                                 "result": {"skipped": "nothing to do"}}
    assert "**decode failed**: RuntimeError: CUDA out of memory" in (tmp_path / "device_check.md").read_text()
