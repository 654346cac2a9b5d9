"""The greedy loop inside a 2-process group (gloo) against one process.

A scripted evaluator (a loss table over configurations, with many ties, and ratios that remove the same number of
components) stands in for the model, so the test checks the loop itself under an active world: every process must
log the same candidates (loss, removed rank, computed, best-so-far) and steps as one process, accept the same plan,
and hold the accepted candidate's outputs when it accepts it (as one process does after ``mark_best``). The division
of the images over the processes is tested with a real model in ``test_divided_search``.
"""

from __future__ import annotations

import pickle
import random

from oodbench.methods.setar.loss import LossResult
from oodbench.methods.setar.search import SearchConfig, greedy
from oodbench.methods.setar.searchlog import SearchLog

TARGETS = [("vision", "W_up", 2), ("vision", "W_up", 1), ("vision", "W_up", 0), ("text", "W_up", 1),
           ("text", "W_up", 0)]
RATIOS = (0.0, 0.1, 0.12, 0.3, 0.5)  # 0.1 and 0.12 remove one component each: the same model


class TableEvaluator:
    """Loss = a seeded table over (accepted configuration + candidate), values in {1, 2, 3, 4}: many ties. Keeps the
    single-process evaluator's protocol: a memo of (weight, removed rank) per step, a known loss for a candidate
    that removes nothing, and outputs kept by ``mark_best`` for ``accept``."""

    def __init__(self):
        self.accepted: dict = {}
        self.current = None
        self.memo: dict = {}
        self.last = self.best = None
        self.accepted_with_outputs: list[bool] = []
        self.forward_passes = 0

    def removed(self, target, ratio):
        return int(ratio * 10)

    def _loss(self, target, k):
        cfg = tuple(sorted({**self.accepted, target: k}.items()))
        v = random.Random(repr(cfg)).choice([1.0, 2.0, 3.0, 4.0])
        return LossResult(v, v / 2, -v, 50.0, 10.0)

    def evaluate(self, target, ratio):
        k = self.removed(target, ratio)
        self.last = None
        if k == 0:
            if self.current is not None:
                return self.current, 0, False
            self.current = self._loss(target, 0)
            self.last = (target, 0)
            return self.current, 0, True
        if (target, k) in self.memo:
            return self.memo[(target, k)], k, False
        result = self.memo[(target, k)] = self._loss(target, k)
        self.last = (target, k)
        self.forward_passes += 1
        return result, k, True

    def mark_best(self):
        self.best = self.last

    def accept(self, target, ratio, result):
        k = self.removed(target, ratio)
        if k > 0:
            self.accepted_with_outputs.append(self.best == (target, k))
            self.accepted[target] = k
            self.current = result
        self.memo.clear()
        self.best = self.last = None

    def forget(self, target):
        pass


def _search(searcher):
    ev = TableEvaluator()
    log = SearchLog()
    accepted, best = greedy(ev, list(TARGETS), SearchConfig(searcher=searcher, ratios=RATIOS), log)
    rows = [(c.step, c.tower, c.layer, c.ratio, c.removed_rank, c.locoop_loss, c.loss_id, c.computed, c.best_so_far)
            for c in log.candidates]
    return accepted, best, rows, log.steps, ev.accepted_with_outputs


SEARCHERS = ("les", "setar-s")


def job(rank, out_dir):
    """Inside a 2-process group: both searches; every rank pickles what it logged and accepted."""
    for searcher in SEARCHERS:
        (out_dir / f"{searcher}-{rank}.pkl").write_bytes(pickle.dumps(_search(searcher)))


def test_divided_steps_give_the_single_process_search(two_process_outputs):
    tmp_path = two_process_outputs
    for searcher in SEARCHERS:
        single = _search(searcher)
        assert all(single[4])  # one process: the accepted candidate's outputs are always at hand
        for rank in (0, 1):
            accepted, best, rows, steps, with_outputs = pickle.loads((tmp_path / f"{searcher}-{rank}.pkl").read_bytes())
            assert (accepted, best, rows, steps) == single[:4], (searcher, rank)
            assert all(with_outputs) and len(with_outputs) == len(single[4])
        assert any(not r[7] and r[4] > 0 for r in single[2])  # a repeated model is logged as not computed
        assert sum(r[8] for r in single[2]) > len(single[1:2])  # the running best moves within steps
