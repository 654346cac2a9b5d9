"""Conformance suite run over EVERY registered method (methods registered later are covered without a new test).

The checks live in :mod:`oodbench.testing.methods` (exported for plugin authors): a Method subclass with a display
name; CLI options default to None and an empty command line gives no options; check + prepare on the tiny CLIP and
a tiny in-memory benchmark give a Modification whose apply/restore is bit-exact and whose key is stable. The
prepare check of methods that train (or declare ``conformance_slow = True``) runs under ``-m slow``.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from oodbench.method import Method, Modification
from oodbench.registry import get, names
from oodbench.testing import checks, parametrize_with_checks, registered
from oodbench.testing import methods as suite


def test_builtins_are_registered():
    assert {"none", "setar"} <= set(names("methods"))


@parametrize_with_checks("methods", registered("methods"))
def test_method_conformance(obj, check):
    check(obj)


def test_slow_marks_follow_the_declarations():
    def prepare_marks(cls):
        (check,) = [c for c in checks("methods", cls) if c.func is suite.check_prepare_is_reversible_and_stable]
        return [m.name for m in check.marks]

    assert prepare_marks(get("methods", "none")) == [] and prepare_marks(get("methods", "setar")) == []

    class Trains(Method):
        """Trains."""

        display_name = "T"
        trains = True

    class TrainsQuickly(Trains):
        """Trains, quickly."""

        conformance_slow = False

    class Searches(Method):
        """Searches for long."""

        display_name = "S"
        conformance_slow = True

    assert prepare_marks(Trains) == ["slow"] and prepare_marks(Searches) == ["slow"]
    assert prepare_marks(TrainsQuickly) == []
    for n in names("methods"):
        cls = get("methods", n)
        assert prepare_marks(cls) == (["slow"] if suite.is_slow(cls) else [])


# -------------------------------------------------------------------------------------- broken methods
class _Base(Method):
    """A method that changes nothing."""

    display_name = "Base"

    def prepare(self, ctx):
        return Modification(method=self.name, key="none", record={"name": self.name, "hash": "none"})


class NoDisplayName(_Base):
    """Forgets its display name."""

    display_name = ""


class DefaultedOption(_Base):
    """Gives its CLI option a default, which would override the preset."""

    @classmethod
    def add_arguments(cls, parser, **kwargs):
        parser.add_argument("--depth", type=int, default=3)


class OptionsFromNothing(_Base):
    """Reports an option the user never passed."""

    option_names = ("depth",)

    @classmethod
    def options_from_args(cls, args: argparse.Namespace):
        return {"depth": getattr(args, "depth", None) or 3}


class LeavesItApplied(_Base):
    """Its modification's undo forgets one parameter."""

    def prepare(self, ctx):
        def apply(backbone):
            with torch.no_grad():
                next(backbone.model.parameters()).add_(1.0)
            return lambda: None  # nothing written back

        return Modification(method=self.name, key="k", record={"name": self.name, "hash": "k"}, apply_fn=apply)


class RandomKey(_Base):
    """A key that changes from one prepare to the next."""

    _count = 0

    def prepare(self, ctx):
        RandomKey._count += 1
        key = f"k{RandomKey._count}"
        return Modification(method=self.name, key=key, record={"name": self.name, "hash": key})


class ModifiesInPrepare(_Base):
    """Leaves the model modified after prepare (a training that forgets to restore)."""

    def prepare(self, ctx):
        with torch.no_grad():
            next(ctx.backbone.model.parameters()).mul_(2.0)
        return super().prepare(ctx)


@pytest.mark.parametrize("cls, check, match", [
    pytest.param(NoDisplayName, suite.check_method_class, "display_name", id="no-display-name"),
    pytest.param(DefaultedOption, suite.check_cli_options_default_to_none, "--depth", id="defaulted-option"),
    pytest.param(OptionsFromNothing, suite.check_empty_command_line_gives_no_options, "empty command line",
                 id="options-from-nothing"),
    pytest.param(LeavesItApplied, suite.check_prepare_is_reversible_and_stable, "apply then restore",
                 id="leaves-it-applied"),
    pytest.param(RandomKey, suite.check_prepare_is_reversible_and_stable, "second prepare", id="random-key"),
    pytest.param(ModifiesInPrepare, suite.check_prepare_is_reversible_and_stable, "pristine",
                 id="modifies-in-prepare"),
])
def test_each_check_rejects_the_method_that_breaks_it(cls, check, match):
    with pytest.raises(AssertionError, match=match):
        check(cls)


def test_a_correct_method_passes_every_check():
    for check in checks("methods", _Base):
        check(_Base)
