"""The SeTAR search with the validation images (and prompts) divided over 2 and 3 processes (gloo) against one.

A random tiny CLIP, 13 images and 5 classes: 2 processes hold 7 + 6 images and 3 + 2 prompts, 3 processes 5 + 4 + 4
images and 2 + 2 + 1 prompts; with an aggregation batch of 4 the official batches [4:8] and [12:13] straddle rank
boundaries, so the per-image reduction must rebuild the official per-batch terms. Every process must log the same
candidates and steps and accept the same plan as one process, with every loss equal to 1e-6 (the ranks' shares run in
other matrix shapes, so the forward may differ in the last float32 bits). A checkpoint of one process is resumed by
three and one of three by one. A rank that fails ends the search on every rank with the same line. The tensor
collectives (rows of uneven length, point-to-point gathers) are checked against what was sent, with their byte counts,
and an extraction whose features travel by the tensor path (NCCL's on GPUs, gloo here) writes the single process's
cache and counts the bytes of the features the other ranks computed.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from oodbench.methods.setar.search import SearchConfig, search

from dist_helpers import spawn

N_IMAGES, NAMES = 13, ["cat", "dog", "car", "tree", "boat"]
CONFIGS = {"setar-s": dict(searcher="visual_text", ratios=(0.0, 0.25, 0.5), top_k=2, batch_size=4, lam=0.5,
                           forward_batch_size=3, text_batch_size=2),
           "les": dict(searcher="les", ratios=(0.0, 0.3, 0.302, 0.6), top_k=1, batch_size=4, lam=1.0,
                       forward_batch_size=4)}
DONE = 3  # steps finished before the interruption (resume tests)


def _inputs():
    from oodbench.backbones import create_backbone

    g = torch.Generator().manual_seed(7)
    images = torch.randn(N_IMAGES, 3, 32, 32, generator=g)
    labels = torch.randint(0, len(NAMES), (N_IMAGES,), generator=g)
    return create_backbone("test_clip_tiny", pretrained="random", seed=3), images, labels


def _search(name, checkpoint=None):
    bb, images, labels = _inputs()
    return search(bb, images, labels, NAMES, config=SearchConfig(**CONFIGS[name]), checkpoint=checkpoint)


def _summary(result):
    """What must not depend on the number of processes: plan, steps, candidates (``seconds`` aside), best."""
    cands = [{k: v for k, v in asdict(c).items() if k != "seconds"} for c in result.log.candidates]
    return result.plan.to_dict(), [asdict(s) for s in result.log.steps], cands, result.best


def _cut(src: Path, dst: Path, done: int) -> None:
    """The checkpoint a search had written after ``done`` steps, cut back from a finished search's last one."""
    state = json.loads((src / "state.json").read_text())
    steps = state["log"]["steps"][:done]
    assert len(state["accepted"]) > done
    state["accepted"] = state["accepted"][:done]
    state["best"] = {k: steps[-1][k] for k in ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent")}
    state["log"]["steps"] = steps
    state["log"]["candidates"] = [c for c in state["log"]["candidates"] if c["step"] < done]
    dst.mkdir(parents=True)
    (dst / "state.json").write_text(json.dumps(state))


def job(rank: int, out: Path) -> None:
    """Inside a process group (2 processes in the default suite's shared group): both searches, pickled per rank."""
    for name in CONFIGS:
        result = _search(name)
        (out / f"divided-{name}-{result.info['world_size']}-{rank}.pkl").write_bytes(
            pickle.dumps((_summary(result), result.info, result.log.efficiency)))


def _three(rank: int, out: Path, partial: Path) -> None:
    import os

    from oodbench import distributed

    with distributed.session("cpu") as (world, _):
        assert world.size == 3
        job(rank, out)
        # resume a single-process checkpoint; then a full search whose checkpoint one process resumes
        resumed = _search("setar-s", checkpoint=partial)
        (out / f"resumed-3-{rank}.pkl").write_bytes(pickle.dumps(_summary(resumed)))
        _search("setar-s", checkpoint=out / "three-ckpt")
        # the tensor collectives: uneven rows (rank 2 none), and a point-to-point gather with a rank sending nothing
        distributed.reset_traffic()
        rows = torch.arange(rank * 10.0, rank * 10.0 + 2 * (2 - rank)).reshape(-1, 2) if rank < 2 else torch.zeros(0, 2)
        gathered = distributed.all_gather_rows(rows, label="rows")
        pieces = None if rank == 1 else {"a": torch.full((rank + 1, 3), float(rank)), "b": torch.tensor([rank] * 2)}
        got = distributed.gather_tensors(pieces, label="pieces")
        (out / f"collectives-{rank}.pkl").write_bytes(pickle.dumps((gathered, got, distributed.traffic())))
        # extraction with the features gathered by the tensor path (NCCL's on GPUs; here over gloo)
        import test_dealt_extraction as ex
        from oodbench.features import runner

        runner.DEVICE_GATHER = True
        try:
            (out / "extract").mkdir(exist_ok=True)
            distributed.reset_traffic()
            ex.job(rank, out / "extract", *ex.DEFAULT_CASE)
            (out / f"extract-traffic-{rank}.pkl").write_bytes(pickle.dumps(distributed.traffic()))
        finally:
            runner.DEVICE_GATHER = None
        # a rank that fails: every rank ends with the same line
        os.environ.update(OODBENCH_FAIL_RANK="2", OODBENCH_FAIL_PHASE="search")
        try:
            _search("les")
            message = None
        except distributed.DistributedError as exc:
            message = str(exc)
        finally:
            os.environ.pop("OODBENCH_FAIL_RANK")
            os.environ.pop("OODBENCH_FAIL_PHASE")
        (out / f"failure-{rank}.txt").write_text(repr(message))


@pytest.fixture(scope="module")
def single():
    torch.set_num_threads(1)
    return {name: _search(name) for name in CONFIGS}


@pytest.fixture(scope="module")
def three_processes(tmp_path_factory, single):
    out = tmp_path_factory.mktemp("three-processes")
    torch.set_num_threads(1)
    full = _search("setar-s", checkpoint=out / "one-ckpt")
    assert _summary(full) == _summary(single["setar-s"])
    _cut(out / "one-ckpt", out / "one-partial", DONE)
    spawn(_three, 3, out, out / "one-partial")
    return out


def _assert_same(got, expected):
    plan, steps, cands, best = got
    e_plan, e_steps, e_cands, e_best = expected
    assert plan == e_plan
    assert len(steps) == len(e_steps) and len(cands) == len(e_cands)
    for a, b in zip(steps + cands, e_steps + e_cands):
        assert {k: v for k, v in a.items() if not isinstance(v, float)} == \
            {k: v for k, v in b.items() if not isinstance(v, float)}
        for k, v in b.items():
            if isinstance(v, float):
                assert a[k] == pytest.approx(v, abs=1e-6, rel=0), k
    for k, v in asdict(e_best).items():
        assert getattr(best, k) == pytest.approx(v, abs=1e-6, rel=0)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_give_the_single_process_search(two_process_outputs, single, name):
    expected = _summary(single[name])
    assert any(not c["computed"] and c["removed_rank"] > 0 for c in expected[2]) or name == "setar-s"
    ranks = []
    for rank in (0, 1):
        summary, info, eff = pickle.loads((two_process_outputs / f"divided-{name}-2-{rank}.pkl").read_bytes())
        _assert_same(summary, expected)
        assert info["world_size"] == 2 and info["image_shares"] == [7, 6]
        n_weights = len({(e["tower"], e["layer"]) for e in summary[0]["entries"]})
        assert info["svds_per_rank"] == [-(-n_weights // 2), n_weights // 2]  # each SVD computed by one rank
        assert info["forward_passes"] == single[name].info["forward_passes"]  # each rank runs each pass, on 1/2
        # the work is divided: the ranks' FLOPs add up to the single process's
        assert sum(eff["per_rank_flops"]) == single[name].log.efficiency["unavoidable_flops"]
        assert 0 < eff["per_rank_flops"][1] < eff["per_rank_flops"][0]  # 6 images and 2 prompts against 7 and 3
        ranks.append(summary)
    assert ranks[0] == ranks[1]  # the ranks reduce the same terms in the same order: equal bit for bit


@pytest.mark.parametrize("name", list(CONFIGS))
def test_three_processes_give_the_single_process_search(three_processes, single, name):
    got = [pickle.loads((three_processes / f"divided-{name}-3-{r}.pkl").read_bytes()) for r in range(3)]
    for summary, info, eff in got:
        _assert_same(summary, _summary(single[name]))
        assert info["image_shares"] == [5, 4, 4] and sum(info["svds_per_rank"]) == len(summary[0]["entries"])
        assert sum(eff["per_rank_flops"]) == single[name].log.efficiency["unavoidable_flops"]
    assert got[0][0] == got[1][0] == got[2][0]


def test_checkpoints_resume_across_process_counts(three_processes, single):
    expected = _summary(single["setar-s"])
    for r in range(3):  # a 1-process checkpoint resumed by 3 processes
        _assert_same(pickle.loads((three_processes / f"resumed-3-{r}.pkl").read_bytes()), expected)
    # a 3-process checkpoint resumed by 1 process
    _cut(three_processes / "three-ckpt", three_processes / "three-partial", DONE)
    _assert_same(_summary(_search("setar-s", checkpoint=three_processes / "three-partial")), expected)


def test_a_failed_rank_ends_the_divided_search_on_every_rank(three_processes):
    lines = {(three_processes / f"failure-{r}.txt").read_text() for r in range(3)}
    assert len(lines) == 1
    line = lines.pop()
    assert "rank 2 of 3 failed" in line and "injected" in line and "\\n" not in line


def test_tensor_collectives_and_their_byte_counts(three_processes):
    rows = torch.tensor([[0.0, 1.0], [2.0, 3.0], [10.0, 11.0]])  # rank 0: two rows, rank 1: one, rank 2: none
    for r in range(3):
        gathered, got, traffic = pickle.loads((three_processes / f"collectives-{r}.pkl").read_bytes())
        assert torch.equal(gathered, rows)
        own = (2, 1, 0)[r]  # rows this rank holds; 8 bytes a row; sent to 2 others, the other ranks' rows received
        assert traffic["rows"] == 8 * (own * 2 + (3 - own))
        if r == 0:
            assert got[1] is None
            assert torch.equal(got[0]["a"], torch.zeros(1, 3)) and torch.equal(got[2]["a"], torch.full((3, 3), 2.0))
            assert torch.equal(got[2]["b"], torch.tensor([2, 2]))
            assert traffic["pieces"] == 3 * 3 * 4 + 2 * 8  # received from rank 2 only
        else:
            assert got is None
            assert traffic.get("pieces", 0) == (0 if r == 1 else 3 * 3 * 4 + 2 * 8)


def test_features_gathered_as_tensors_write_the_single_process_cache(tmp_path, three_processes):
    import test_dealt_extraction as ex

    n, broken, batch, _ = ex.DEFAULT_CASE
    ex._compare(tmp_path, three_processes / "extract", *ex.DEFAULT_CASE)
    arrays, _ = pickle.loads((three_processes / "extract" / "features.pkl").read_bytes())
    per_image = arrays["image"][0].nbytes + arrays["local"][0].nbytes  # the forward's outputs (logits follow later)
    batches = [range(i, min(i + batch, n)) for i in range(0, n, batch)]  # shards of 6 = 2 whole batches of 3
    readable = [sum(1 for j in b if j not in broken) for b in batches]
    sent = [sum(r for i, r in enumerate(readable) if i % 3 == rank) * per_image for rank in range(3)]
    traffic = [pickle.loads((three_processes / f"extract-traffic-{r}.pkl").read_bytes()) for r in range(3)]
    label = "features part"
    assert traffic[0][label] == sent[1] + sent[2] > 0  # rank 0 receives what ranks 1 and 2 computed
    assert traffic[1][label] == sent[1] and traffic[2][label] == sent[2]
