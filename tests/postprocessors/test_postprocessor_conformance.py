"""Conformance suite run over EVERY registered postprocessor (a new plugin is covered without a new test).

The checks live in :mod:`oodbench.testing.postprocessors` (exported for plugin authors): fit returns self;
fitting twice gives the same scores; scoring mutates neither its input nor the object; scores do not depend on
batch size or order; higher = ID on an easy case; get_params/set_params round-trip; float64 output of shape [N];
invalid pairings are refused naming the missing features.
"""

from __future__ import annotations

import pytest

from oodbench.registry import names
from oodbench.testing import checks, parametrize_with_checks, registered
from oodbench.testing.fixtures import splits_providing
from oodbench.testing.postprocessors import check_orientation_higher_is_id, check_score_mutates_neither_input_nor_object

BUILTINS = {"mcm", "glmcm", "glmcm_logits", "neglabel", "msp", "energy", "maxlogit", "react", "dice", "ash_p", "ash_b", "ash_s", "knn"}


def test_builtins_are_registered():
    assert BUILTINS <= set(names("postprocessors"))


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_gets_synthetic_inputs(name):
    """The built-ins run every check (none is skipped for lack of inputs)."""
    from oodbench.registry import get

    assert splits_providing(get("postprocessors", name).requires) is not None


@parametrize_with_checks("postprocessors", registered("postprocessors"))
def test_postprocessor_conformance(obj, check):
    check(obj)


# ------------------------------------------------------------------- the checks catch what they promise to
def test_orientation_check_rejects_a_flipped_score():
    from oodbench.postprocessors.msp import MSP

    class Flipped(MSP):
        """MSP with the wrong orientation (higher = OOD)."""

        def score(self, features):
            return -super().score(features)

    with pytest.raises(AssertionError, match="higher must mean ID"):
        check_orientation_higher_is_id(Flipped)


def test_mutation_check_rejects_a_score_that_changes_its_state():
    from oodbench.postprocessors.energy import Energy

    class Counting(Energy):
        """Energy that counts its calls in its own state."""

        def score(self, features):
            self.calls_ = getattr(self, "calls_", 0) + 1
            return super().score(features)

    with pytest.raises(AssertionError, match="postprocessor"):
        check_score_mutates_neither_input_nor_object(Counting)


def test_every_check_function_is_run():
    import oodbench.testing.postprocessors as suite
    from oodbench.registry import get

    funcs = {n for n in dir(suite) if n.startswith("check_")}
    assert {c.func.__name__ for c in checks("postprocessors", get("postprocessors", "mcm"))} == funcs
