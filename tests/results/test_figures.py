"""Figures of the paper from stored runs: the data behind each figure (CSV) equals the stored values, missing
points are left out, PNG and SVG are written with labelled axes; loss curves from the fine-tuning logs."""

import csv
import json

import pytest
from table_helpers import record

from oodbench.paper import FigureSpec, RunSpec, Series
from oodbench.papers.digits import digits_experiments
from oodbench.reporting.figures import draw, series_data
from oodbench.reporting.tables import RunIndex


def _avg(fpr, auc):
    return {"a": {"fpr95": fpr, "auroc": auc}, "average": {"fpr95": fpr, "auroc": auc}}


def test_sensitivity_figure_data_and_files(tmp_path):
    exp = next(e for e in digits_experiments() if e.id == "lambda")
    fig = exp.figures[0]
    recs = []
    for i, lam in enumerate((0.01, 0.05, 0.1)):  # three of seven lambda values stored, MCM only
        recs.append(record(_avg(0.3 + 0.01 * i, 0.9 - 0.01 * i), benchmark="digits", backbone="digits_clip",
                           method="setar", options={"lam": lam}, pretrained="shipped", run_id=f"r{i}"))
    index = RunIndex(recs)
    data = series_data(fig, index)
    mcm = next(s for s in data if s.label == "SeTAR+MCM")
    assert [p.x for p in mcm.points] == [0.01, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30]
    assert [round(p.mean.get("FPR95", -1), 6) for p in mcm.points] == [30.0, 31.0, 32.0, -1, -1, -1, -1]
    written = draw(fig, index, tmp_path)
    assert {p.name for p in written} == {"fig4_lambda.csv", "fig4_lambda.png", "fig4_lambda.svg"}
    assert (tmp_path / "fig4_lambda.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "fig4_lambda.svg").read_text()
    assert "average FPR95" in svg and "λ (weight of the LoCoOp OOD term)" in svg and "SeTAR+MCM" in svg
    rows = list(csv.DictReader(open(tmp_path / "fig4_lambda.csv")))
    assert rows[1]["AUROC mean"] == "89.0000" and rows[1]["runs found"] == "1"
    assert rows[3]["AUROC mean"] == "" and rows[3]["runs needed"] == "1"


def test_seeded_points_show_mean_and_std(tmp_path):
    runs = tuple(RunSpec.make("b", "bb", "mcm", "lora", seed=s) for s in (3, 4, 5))
    fig = FigureSpec("sensitivity", "f", "t", "x", (Series("p", "LoRA", ((1.0, runs),)),))
    index = RunIndex([record(_avg(v, 0.5), benchmark="b", backbone="bb", method="lora", seed=s, run_id=f"s{s}")
                      for s, v in zip((3, 4, 5), (0.1, 0.2, 0.6))])
    p = series_data(fig, index)[0].points[0]
    assert p.mean["FPR95"] == pytest.approx(30.0) and p.std["FPR95"] == pytest.approx(21.602469, abs=1e-5)


def test_loss_curves_read_the_fine_tuning_logs(tmp_path):
    exp = next(e for e in digits_experiments() if e.id == "finetune")
    fig = exp.figures[0]
    recs, ckpt = [], tmp_path / "checkpoints"
    for seed in (3, 4, 5):
        key = f"k{seed}"
        (ckpt / key).mkdir(parents=True)
        lines = ["step,epoch,lr,locoop_loss,loss_id,loss_ood,acc,ood_patch_percent,batch,seconds"]
        lines += [f"{i},0,0.01,{1.0 / (i + 1) + seed},{0.5},{-0.1 * i},90,40,12,0.1" for i in range(5)]
        (ckpt / key / "loss_log.csv").write_text("\n".join(lines) + "\n")
        recs.append(record(_avg(0.3, 0.9), benchmark="digits", backbone="digits_clip", method="setar-ft", seed=seed,
                           plan={"hash": key}, pretrained="shipped", run_id=key))
    written = draw(fig, RunIndex(recs), tmp_path / "out", checkpoints=ckpt)
    assert {p.suffix for p in written} == {".csv", ".png", ".svg"}
    rows = list(csv.DictReader(open(tmp_path / "out" / "fig6_loss_curves.csv")))
    assert len(rows) == 15 and {r["series"] for r in rows} == {"SeTAR+FT"}
    assert float(rows[0]["locoop_loss"]) == pytest.approx(4.0)  # seed 3, step 0
    assert "LoCoOp loss" in (tmp_path / "out" / "fig6_loss_curves.svg").read_text()


def test_plan_map_of_the_stored_plan(tmp_path):
    exp = next(e for e in digits_experiments() if e.id == "accuracy")
    fig = exp.figures[0]
    plan = {"name": "setar", "hash": "p", "prune": "minor",
            "entries": [{"tower": "vision", "weight_type": "W_up", "layer": 1, "ratio": 0.15},
                        {"tower": "text", "weight_type": "W_up", "layer": 0, "ratio": 0.3}]}
    rec = record(_avg(0.3, 0.9), benchmark="digits", backbone="digits_clip", method="setar", plan=plan,
                 pretrained="shipped")
    written = draw(fig, RunIndex([rec]), tmp_path)
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert "0.15" in written[1].read_text() and json.dumps(plan)  # the ratio is written in its cell
