"""A scripted stand-in for the SeTAR evaluator, shared by the search and resume tests."""

from oodbench.methods.setar.loss import LossResult


class Scripted:
    """An evaluator whose loss is a fixed table: loss(accepted configuration + candidate)."""

    def __init__(self, table, default=10.0):
        self.table, self.default, self.accepted, self.calls = table, default, {}, []

    def evaluate(self, target, ratio):
        self.calls.append((target, ratio))
        cfg = {**self.accepted, target: ratio}
        key = frozenset((t, r) for t, r in cfg.items() if r > 0)
        v = self.table.get(key, self.default)
        return LossResult(v, v, 0.0, 0.0, 0.0), round(10 * ratio), True

    def mark_best(self):
        pass

    def accept(self, target, ratio, result):
        self.accepted[target] = ratio

    def forget(self, target):
        pass

    def resume(self, accepted, best):
        self.accepted = dict(accepted)
