"""A search checkpoint written by one process is resumed by two (rank 0 reads it and hands the state to rank 1),
and the divided rest of the search ends as the uninterrupted single-process search (losses to 1e-6)."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict

import pytest
import torch

from oodbench.methods.setar.search import SearchConfig, search

from dist_helpers import spawn

CONFIG = dict(searcher="les", ratios=(0.0, 0.25, 0.5), top_k=2, batch_size=16)
DONE = 2  # steps finished before the interruption


def _inputs():
    from oodbench.backbones import create_backbone

    g = torch.Generator().manual_seed(1)
    images = torch.randn(40, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (40,), generator=g)
    names = ["cat", "dog", "car", "tree", "boat", "house", "bird", "plane", "apple", "chair"]
    return create_backbone("test_clip_tiny", pretrained="random", seed=0), images, labels, names


def _summary(result):
    return (result.plan.to_dict(), [asdict(s) for s in result.log.steps],
            [{k: v for k, v in asdict(c).items() if k != "seconds"} for c in result.log.candidates], result.best)


def _worker(rank, folder, out):
    from oodbench import distributed

    with distributed.session("cpu"):
        bb, images, labels, names = _inputs()
        result = search(bb, images, labels, names, config=SearchConfig(**CONFIG), checkpoint=folder)
        (out / f"{rank}.pkl").write_bytes(pickle.dumps(_summary(result)))


@pytest.mark.slow
def test_two_processes_resume_a_single_process_checkpoint(tmp_path):
    torch.set_num_threads(1)
    bb, images, labels, names = _inputs()
    full = search(bb, images, labels, names, config=SearchConfig(**CONFIG), checkpoint=tmp_path / "full")
    # the checkpoint after DONE steps: the full run's final state cut back (what the run had saved then)
    state = json.loads((tmp_path / "full" / "state.json").read_text())
    steps = state["log"]["steps"][:DONE]
    assert len(state["accepted"]) > DONE + 1
    state["accepted"] = state["accepted"][:DONE]
    state["best"] = {k: steps[-1][k] for k in ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent")}
    state["log"]["steps"] = steps
    state["log"]["candidates"] = [c for c in state["log"]["candidates"] if c["step"] < DONE]
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "state.json").write_text(json.dumps(state))

    spawn(_worker, 2, tmp_path / "partial", tmp_path)
    expected = _summary(full)
    from test_divided_search import _assert_same

    for rank in (0, 1):  # the same plan, steps and candidates; losses to float32 rounding (1e-6)
        _assert_same(pickle.loads((tmp_path / f"{rank}.pkl").read_bytes()), expected)
    final = json.loads((tmp_path / "partial" / "state.json").read_text())
    assert len(final["accepted"]) == len(state["accepted"]) + len(full.log.steps) - DONE  # rank 0 went on saving
