"""The registry: decorator registration, lookup errors, aliases, plugin files and entry points."""

import subprocess
import sys
import textwrap

import pytest

from oodbench import registry as R


def test_register_get_alias_and_listing():
    reg = R.Registry("postprocessors")
    reg._builtins_loaded = reg._entry_points_scanned = True  # an isolated table

    @reg.register("my_score", aliases=("MyScore",))
    class MyScore:
        """My score: one line of summary."""

    assert reg.get("my_score") is MyScore
    assert reg.get("MYSCORE") is MyScore  # case-insensitive, alias
    assert MyScore.registry_name == "my_score"
    assert reg.names() == ["my_score"] and reg.names("*score") == ["my_score"] and reg.names("x*") == []
    assert reg.entries()[0].summary == "My score: one line of summary."


def test_duplicate_names_are_an_error():
    reg = R.Registry("backbones")
    reg._builtins_loaded = reg._entry_points_scanned = True
    reg.add("a", object(), aliases=("b",))
    with pytest.raises(R.RegistryError, match="already registered"):
        reg.add("a", object())
    with pytest.raises(R.RegistryError, match="already registered"):
        reg.add("c", object(), aliases=("B",))


def test_unknown_name_lists_known_names_and_suggests():
    reg = R.Registry("benchmarks")
    reg._builtins_loaded = reg._entry_points_scanned = True
    reg.add("imagenet1k", object())
    reg.add("voc", object())
    with pytest.raises(R.RegistryError) as info:
        reg.get("imagenet1")
    msg = str(info.value)
    assert "unknown benchmark 'imagenet1'" in msg and "did you mean imagenet1k" in msg and "known: imagenet1k, voc" in msg


def test_unknown_kind():
    with pytest.raises(R.RegistryError, match="unknown registry kind 'scores'"):
        R.registry("scores")
    assert R.registry("postprocessor").kind == "postprocessors"


PLUGIN = textwrap.dedent(
    '''
    import numpy as np

    from oodbench.postprocessors.base import Postprocessor
    from oodbench.registry import register

    @register("postprocessors", "tmp_plugin_score")
    class TmpPluginScore(Postprocessor):
        """A score defined in a plugin file."""

        requires = frozenset({"logits"})

        def score(self, features):
            return np.asarray(features["logits"], dtype=np.float64).max(1)
    '''
)


def test_plugin_file_registers(tmp_path):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN)
    R.load_plugin(path)
    cls = R.get("postprocessors", "tmp_plugin_score")
    assert cls.__name__ == "TmpPluginScore"
    entry = next(e for e in R.registry("postprocessors").entries("tmp_plugin_score"))
    assert entry.source == "plugin:my_plugin.py"
    R.load_plugin(path)  # loading the same file twice is harmless


def test_broken_plugin_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(R.RegistryError, match="broken.py failed to import: RuntimeError: boom"):
        R.load_plugin(path)
    with pytest.raises(R.RegistryError, match="plugin file not found"):
        R.load_plugin(tmp_path / "missing.py")


def _write_distribution(site, group="oodbench.postprocessors", name="ep_score", target="ep_scores:EpScore"):
    (site / "ep_scores.py").write_text('class EpScore:\n    """Score installed through an entry point."""\n')
    dist = site / "ep_scores_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-scores-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


def test_entry_point_plugin_is_found(tmp_path, monkeypatch):
    _write_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = R.Registry("postprocessors")
    reg._builtins_loaded = True
    assert "ep_score" in reg
    entry = reg.entries("ep_score")[0]
    assert entry.source == "entry-point:ep-scores-pkg"
    assert reg.get("ep_score").__name__ == "EpScore"


def test_entry_point_colliding_with_a_builtin_is_an_error(tmp_path, monkeypatch):
    _write_distribution(tmp_path, name="dup")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = R.Registry("postprocessors")
    reg._builtins_loaded = True
    reg.add("dup", object())
    with pytest.raises(R.RegistryError, match="collides"):
        reg.names()


def test_cli_lists_plugins_from_file_and_entry_point(tmp_path):
    """The way a user sees it: `oodbench list` in a fresh process finds both kinds of plugin."""
    site = tmp_path / "site"
    site.mkdir()
    _write_distribution(site)
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(PLUGIN)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "oodbench.cli", "list", "postprocessors", "--plugin", str(plugin)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tmp_plugin_score" in proc.stdout and "plugin:my_plugin.py" in proc.stdout
    assert "ep_score" in proc.stdout and "entry-point:ep-scores-pkg" in proc.stdout
