"""`oodbench.testing` as a plugin author uses it: parametrize_with_checks in a test file of its own."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from oodbench.testing import KINDS, checks, parametrize_with_checks

PLUGIN_TESTS = textwrap.dedent('''
    import numpy as np

    from oodbench.postprocessors.base import Postprocessor
    from oodbench.testing import parametrize_with_checks


    class MaxLogitPlus(Postprocessor):
        """Max logit plus a constant (a third-party score, not registered)."""

        requires = frozenset({"logits"})
        paper = "a plugin's own paper"

        def __init__(self, shift: float = 1.0):
            self.shift = shift

        def score(self, features):
            return np.asarray(features["logits"], dtype=np.float64).max(axis=1) + self.shift


    class Backwards(MaxLogitPlus):
        """The same score with the wrong orientation."""

        def score(self, features):
            return -super().score(features)


    @parametrize_with_checks("postprocessors", [MaxLogitPlus, Backwards])
    def test_plugin(obj, check):
        check(obj)
''')


def test_a_plugin_test_file_runs_the_checks(tmp_path):
    (tmp_path / "test_plugin.py").write_text(PLUGIN_TESTS)
    env = {**os.environ, "OODBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    n = len(list(checks("postprocessors", object)))
    assert f"1 failed, {2 * n - 1} passed" in out, out
    assert re.search(r"FAILED .*test_plugin\[Backwards-check_orientation_higher_is_id\]", out), out


def test_marks_of_a_param_entry_reach_every_check_and_unknown_kinds_are_refused():
    mark = parametrize_with_checks("modifiers", [pytest.param(object, marks=pytest.mark.slow)]).mark
    params = mark.args[1]
    assert params and all([m.name for m in p.marks] == ["slow"] for p in params)
    assert all(p.id.startswith("object-check_") for p in params)
    with pytest.raises(ValueError, match="no conformance suite for kind 'benchmarks'"):
        parametrize_with_checks("benchmarks", [])
    assert set(KINDS) == {"postprocessors", "modifiers", "backbones", "methods"}
