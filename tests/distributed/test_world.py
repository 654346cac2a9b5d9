"""oodbench.distributed without processes: the world torchrun's variables describe, the round-robin deal, the
single-process behaviour of the checked phases, and the failure hook."""

from __future__ import annotations

import pytest

from oodbench import distributed
from oodbench.errors import UserError


def test_no_torchrun_variables_is_one_process(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    w = distributed.env_world()
    assert (w.rank, w.size, w.active, w.is_main) == (0, 1, False, True)
    with distributed.session("cpu") as (world, device):
        assert world == distributed.World() and device == "cpu"


def test_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "node1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    w = distributed.env_world()
    assert (w.rank, w.size, w.local_rank, w.active, w.is_main) == (5, 8, 1, True, False)
    assert distributed.device_for("cuda", w) == "cuda:1" and distributed.device_for("cuda:0", w) == "cuda:1"
    assert distributed.device_for("cpu", w) == "cpu"
    assert distributed.device_for("cuda", distributed.World()) == "cuda"


@pytest.mark.parametrize("env, needle", [
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, "RANK='2'"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, "RANK=None"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "1"}, "MASTER_ADDR"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer"),
])
def test_inconsistent_variables_are_one_line(monkeypatch, env, needle):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError) as info:
        distributed.env_world()
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("n, size", [(0, 2), (1, 2), (7, 2), (9, 4), (3, 8), (64, 8)])
def test_deal_is_a_partition_in_order(n, size):
    items = list(range(n))
    shares = [distributed.deal(items, distributed.World(rank=r, size=size)) for r in range(size)]
    assert sorted(x for s in shares for x in s) == items  # nothing dropped, nothing duplicated (no padding)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    for r, share in enumerate(shares):  # item i goes to rank i mod size
        assert share == [i for i in items if i % size == r]


def test_checked_phases_in_one_process():
    assert distributed.checked(lambda: 3) == 3
    assert distributed.on_main(lambda: 4) == 4
    assert distributed.all_gather_checked(lambda: 5) == [5]
    assert distributed.gather_checked(lambda: 6) == [6]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1} and distributed.all_gather_object(2) == [2]
    distributed.barrier()

    class Boom(RuntimeError):
        pass

    def fail():
        raise Boom("x")

    with pytest.raises(Boom):  # one process: the exception itself, unchanged
        distributed.checked(fail)


def test_failure_hook_fires_only_for_its_rank_and_phase(monkeypatch):
    monkeypatch.setenv("OODBENCH_FAIL_RANK", "0")
    monkeypatch.setenv("OODBENCH_FAIL_PHASE", "score")
    assert distributed.checked(lambda: 1, phase="extract") == 1
    with pytest.raises(RuntimeError, match="OODBENCH_FAIL_RANK"):
        distributed.checked(lambda: 1, phase="score")
    monkeypatch.setenv("OODBENCH_FAIL_RANK", "1")
    assert distributed.checked(lambda: 1, phase="score") == 1


def test_pipeline_started_by_torchrun_without_a_process_group_refuses(monkeypatch):
    from oodbench.orchestration.pipeline import RunSettings, run

    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "a", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match="start it without torchrun"):  # e.g. `torchrun ... -m oodbench sweep`
        run(None, RunSettings(backbone="digits_clip"))
