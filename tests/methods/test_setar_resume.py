"""A SeTAR search interrupted after any step resumes there and ends exactly as an uninterrupted one.

In-process: the search is interrupted by an exception after a random number of candidates (mid-step), then run
again with the same checkpoint folder; plan, steps and candidates (all but their ``seconds``) must equal those of
an uninterrupted search, and the finished steps must not be evaluated again. As a user meets it: ``oodbench
search`` is killed with SIGKILL at a random step (a plugin file slows each candidate down so that the kill lands
mid-search), the same command is run again, and its plan and logs equal an uninterrupted run's; a changed
setting starts from step 0.
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from oodbench.methods.setar import evaluator as evaluator_mod
from oodbench.methods.setar.loss import LossResult
from scripted_evaluator import Scripted
from oodbench.methods.setar.search import SearchConfig, greedy, search
from oodbench.methods.setar.searchlog import SearchCheckpoint, SearchLog, SearchState


class _Interrupt(Exception):
    pass


def _without_seconds(log: SearchLog) -> list[dict]:
    return [{k: v for k, v in asdict(c).items() if k != "seconds"} for c in log.candidates]


def _counting_evaluate(monkeypatch, stop_after: int | None = None) -> list:
    """Count FastEvaluator.evaluate calls; raise after ``stop_after`` of them (a crash mid-search)."""
    calls = []
    original = evaluator_mod.FastEvaluator.evaluate

    def evaluate(self, target, ratio):
        if stop_after is not None and len(calls) >= stop_after:
            raise _Interrupt
        calls.append((target, ratio))
        return original(self, target, ratio)

    monkeypatch.setattr(evaluator_mod.FastEvaluator, "evaluate", evaluate)
    return calls


@pytest.mark.parametrize("kw", [
    dict(searcher="setar-s"),
    dict(searcher="mis"),
    dict(searcher="les"),
    dict(searcher="setar-s", prune="random", seed=3),
])
def test_interrupted_search_resumes_with_the_same_result(tiny_clip, val_set, tmp_path, monkeypatch, kw):
    images, labels, names = val_set
    cfg = SearchConfig(ratios=(0.0, 0.25, 0.5), top_k=2, batch_size=16, **kw)
    full = search(tiny_clip, images, labels, names, config=cfg)
    n_candidates = len(full.log.candidates)

    step0 = sum(c.step == 0 for c in full.log.candidates)
    stop = random.Random().randrange(step0, n_candidates)  # after step 0 is finished, before the end
    folder = tmp_path / "partial"
    _counting_evaluate(monkeypatch, stop_after=stop)
    with pytest.raises(_Interrupt):
        search(tiny_clip, images, labels, names, config=cfg, checkpoint=folder)
    state = json.loads((folder / "state.json").read_text())
    done_steps = len(state["accepted"])
    done_candidates = len(state["log"]["candidates"])
    assert 1 <= done_steps < len(full.log.steps), f"stopped after {stop} candidates"
    assert done_candidates <= stop

    monkeypatch.undo()
    calls = _counting_evaluate(monkeypatch)
    resumed = search(tiny_clip, images, labels, names, config=cfg, checkpoint=folder)
    msg = f"interrupted after {stop} candidates ({done_steps} steps)"
    assert len(calls) == n_candidates - done_candidates, msg  # finished steps are not evaluated again
    assert resumed.plan.to_dict() == full.plan.to_dict(), msg
    assert resumed.plan.hash() == full.plan.hash()
    assert [asdict(s) for s in resumed.log.steps] == [asdict(s) for s in full.log.steps], msg
    assert _without_seconds(resumed.log) == _without_seconds(full.log), msg
    assert resumed.best == full.best
    # the backbone is left pristine, as by an uninterrupted search
    again = search(tiny_clip, images, labels, names, config=cfg)
    assert _without_seconds(again.log) == _without_seconds(full.log)


def test_a_checkpoint_of_other_settings_is_ignored(tiny_clip, val_set, tmp_path, monkeypatch, caplog):
    images, labels, names = val_set
    cfg_a = SearchConfig(ratios=(0.0, 0.25, 0.5), top_k=2, batch_size=16)
    cfg_b = SearchConfig(ratios=(0.0, 0.3), top_k=2, batch_size=16)
    folder = tmp_path / "partial"
    _counting_evaluate(monkeypatch, stop_after=5)
    with pytest.raises(_Interrupt):
        search(tiny_clip, images, labels, names, config=cfg_a, checkpoint=folder)
    monkeypatch.undo()
    calls = _counting_evaluate(monkeypatch)
    result = search(tiny_clip, images, labels, names, config=cfg_b, checkpoint=folder)
    assert len(calls) == len(result.log.candidates) == 4 * 2  # from step 0: 4 weights x 2 ratios
    assert "belongs to other settings" in caplog.text
    monkeypatch.undo()
    plain = search(tiny_clip, images, labels, names, config=cfg_b)
    assert _without_seconds(result.log) == _without_seconds(plain.log)


# ------------------------------------------------------------------- the acceptance rule across a resume
A, B, C = ("vision", "W_up", 2), ("vision", "W_up", 1), ("vision", "W_up", 0)
# Step 1's candidates beat step 0's ratio-0 loss (5.0) but not the global best (4.0): a resume that forgot the
# global best would accept B at 0.2.
TABLE = {frozenset(k): v for k, v in {(): 5.0, ((A, 0.1),): 4.0, ((A, 0.1), (B, 0.1)): 4.5,
                                      ((A, 0.1), (B, 0.2)): 4.2, ((A, 0.1), (C, 0.2)): 3.0}.items()}


def test_resume_keeps_the_global_best():
    cfg = SearchConfig(ratios=(0.0, 0.1, 0.2))
    log = SearchLog()
    states = []
    accepted, best = greedy(Scripted(TABLE), [A, B, C], cfg, log,
                            on_step=lambda acc, b: states.append((list(acc), b, len(log.candidates))))
    assert accepted == [(A, 0.1), (B, 0.0), (C, 0.2)] and best.locoop_loss == 3.0
    for acc, b, n in states[:-1]:
        ev = Scripted(TABLE)
        ev.resume(acc, b)
        resumed_log = SearchLog(steps=log.steps[:len(acc)], candidates=log.candidates[:n])
        acc2, best2 = greedy(ev, [A, B, C], cfg, resumed_log, resume=SearchState(acc, b, resumed_log))
        assert acc2 == accepted and best2 == best, f"resumed after step {len(acc) - 1}"
        assert resumed_log.steps == log.steps and _without_seconds(resumed_log) == _without_seconds(log)


def test_checkpoint_round_trip_is_exact(tmp_path):
    log = SearchLog(settings={"ratios": (0.0, 0.1), "lambda": 0.1})
    best = LossResult(1 / 3, 0.1 + 0.2, -7e-12, 33.333333333333336, 81.25)
    log.add_candidate(0, A, 0.1, 3, best, True, True, 0.5)
    log.add_step(0, A, 0.1, best)
    ckpt = SearchCheckpoint(tmp_path, log.settings, [A, B])
    ckpt.save(SearchState([(A, 0.1)], best, log, 7, 1.5))
    state = SearchCheckpoint(tmp_path, {"ratios": [0.0, 0.1], "lambda": 0.1}, [A, B]).load()
    assert state.accepted == [(A, 0.1)] and state.best == best and state.forward_passes == 7
    assert state.log.steps == log.steps and state.log.candidates == log.candidates
    assert SearchCheckpoint(tmp_path, log.settings, [B, A]).load() is None  # another order: ignored
    (tmp_path / "state.json").write_text("{not json")
    assert SearchCheckpoint(tmp_path, log.settings, [A, B]).load() is None


# --------------------------------------------------------------------- `oodbench search` killed with SIGKILL
SLOW_PLUGIN = '''
import time

import torch

from oodbench.methods.setar import evaluator

torch.set_num_threads(1)  # as the test process (tests/methods/conftest.py)
_evaluate = evaluator.FastEvaluator.evaluate


def _slow(self, target, ratio):
    time.sleep(0.2)
    return _evaluate(self, target, ratio)


evaluator.FastEvaluator.evaluate = _slow
'''


def _search_args(tmp_path, out, ratios="0,0.2,0.4"):
    return ["search", "--benchmark", "digits", "--backbone", "test_clip_tiny", "--ratios", ratios, "--topk", "1",
            "--lambda", "0.1", "--cache-dir", str(tmp_path / "cache"), "--results-root", str(tmp_path / "runs"),
            "--out", str(out)]


def _files(folder: Path) -> dict:
    plan = json.loads((folder / "plan.json").read_text())
    with open(folder / "search_candidates.csv") as f:
        cands = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return {"plan": plan, "steps": (folder / "search_steps.csv").read_text(), "candidates": cands}


def _partial_steps(cache: Path) -> int:
    best = 0
    for state in cache.glob("plans/*.partial/state.json"):
        try:
            best = max(best, len(json.loads(state.read_text())["accepted"]))
        except (OSError, ValueError):
            pass
    return best


def test_killed_search_command_resumes(tmp_path, monkeypatch, capsys):
    from oodbench.cli import main

    assert main(_search_args(tmp_path / "ref_home", tmp_path / "ref")) == 0  # uninterrupted, own cache
    reference = _files(tmp_path / "ref")
    n_steps = len(reference["steps"].splitlines()) - 1
    assert n_steps == 4  # test_clip_tiny: 2 vision + 2 text blocks

    plugin = tmp_path / "slow_search.py"
    plugin.write_text(SLOW_PLUGIN)
    kill_at = random.Random().randrange(1, n_steps)
    env = {**os.environ, "OODBENCH_PROGRESS": "off", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "oodbench.cli", *_search_args(tmp_path, tmp_path / "out"),
                             "--plugin", str(plugin), "-q"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _partial_steps(tmp_path / "cache") < kill_at:
        assert proc.poll() is None, f"search ended before step {kill_at}: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no search step finished in 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    done = _partial_steps(tmp_path / "cache")
    assert kill_at <= done < n_steps and not (tmp_path / "out").exists()

    # a changed setting is another search: it starts at step 0 and leaves the partial search alone
    calls = _counting_evaluate(monkeypatch)
    assert main(_search_args(tmp_path, tmp_path / "other", ratios="0,0.3")) == 0
    assert len(calls) == 2 * n_steps
    assert _partial_steps(tmp_path / "cache") == done
    monkeypatch.undo()

    # the same command resumes after the last finished step and ends as the uninterrupted run
    calls = _counting_evaluate(monkeypatch)
    capsys.readouterr()
    assert main(_search_args(tmp_path, tmp_path / "out")) == 0
    assert f"resuming after step {done - 1} of {n_steps}" in capsys.readouterr().err
    assert len(calls) == 3 * (n_steps - done), f"killed at step {done}"
    assert _files(tmp_path / "out") == reference, f"killed at step {done}"
    assert not list((tmp_path / "cache").glob("plans/*.partial"))  # finished: partial folder removed
    cached = list((tmp_path / "cache").glob("plans/*/plan.json"))
    assert len(cached) == 2 and reference["plan"] in [json.loads(p.read_text()) for p in cached]
