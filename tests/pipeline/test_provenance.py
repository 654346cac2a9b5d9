"""Every stored run records its provenance (oodbench.provenance): code version and commit, library versions,
device, CPU model and instruction set, thread count; `oodbench runs show` prints it; it is not part of a run's
identity, so a rerun under another thread count reuses the stored run."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench.cache import CacheRoot
from oodbench.cli import main
from oodbench.orchestration.pipeline import RunSettings, run
from oodbench.results import ResultsStore
from oodbench.results.store import run_identity

ROOT = Path(__file__).resolve().parents[2]


def _cpu_model_from_lscpu() -> str | None:
    """The CPU model as another tool reads it (lscpu), None where it cannot."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env={"LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def _git_head() -> str | None:
    if not (ROOT / ".git").exists():
        return None
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def test_stored_run_records_its_provenance(small_digits, tiny_clip, tmp_path, capsys):
    import open_clip
    import timm

    store = ResultsStore(tmp_path / "runs")
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        (result,) = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("mcm",)), CacheRoot(tmp_path),
                        store, backbone=tiny_clip)
    finally:
        torch.set_num_threads(before)
    data = json.loads((result.path / "result.json").read_text(encoding="utf-8"))
    prov = data["provenance"]
    from oodbench import __version__

    assert prov["oodbench"] == __version__
    assert prov["threads"] == 3
    assert prov["device"] == "cpu" and prov["gpu"] is None
    assert prov["packages"]["torch"] == torch.__version__
    assert prov["packages"]["open_clip_torch"] == open_clip.__version__
    assert prov["packages"]["timm"] == timm.__version__
    assert prov["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    lscpu = _cpu_model_from_lscpu()
    if lscpu is not None:
        assert prov["cpu"] == lscpu
    head = _git_head()
    if head is not None:
        assert prov["commit"].split("+")[0] == head[:12]
        assert head[:12] in data["code_version"]
    # runs show prints it
    assert main(["runs", "show", result.path.name, "--results-root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out and "3 thread(s)" in out and prov["cpu"] in " ".join(out.split())


def test_provenance_is_not_part_of_a_runs_identity_and_a_rerun_with_other_threads_reuses_it(small_digits, tiny_clip,
                                                                                              tmp_path):
    store, caches = ResultsStore(tmp_path / "runs"), CacheRoot(tmp_path)
    settings = RunSettings("test_clip_tiny", postprocessors=("mcm",))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        (first,) = run(small_digits, settings, caches, store, backbone=tiny_clip, reuse=True)
        torch.set_num_threads(2)
        (second,) = run(small_digits, settings, CacheRoot(tmp_path / "fresh"), store, backbone=tiny_clip, reuse=True)
    finally:
        torch.set_num_threads(before)
    assert first.record.provenance["threads"] == 1
    assert second.path == first.path and len(store.run_ids()) == 1
    np.testing.assert_array_equal(first.scores["id"], second.scores["id"])
    other = first.record
    changed = type(other).from_json(other.to_json() | {"provenance": {**other.provenance, "threads": 64}})
    assert run_identity(changed) == run_identity(other)
    changed.device = "cuda:0"  # what ran where is still part of it
    assert run_identity(changed) != run_identity(other)


def test_provenance_outside_a_checkout_has_no_commit(monkeypatch, tmp_path):
    import oodbench.provenance as prov

    fake = tmp_path / "site-packages" / "oodbench" / "provenance.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("")
    monkeypatch.setattr(prov, "__file__", str(fake))
    prov.git_commit.cache_clear()
    try:
        assert prov.git_commit() is None
    finally:
        prov.git_commit.cache_clear()


@pytest.mark.parametrize("prov, expect", [({}, []), ({"oodbench": "1.0", "commit": None, "packages": {"torch": "2"},
                                                       "cpu": "X", "cpu_capability": "AVX2", "threads": 4,
                                                       "cpu_count": 8, "python": "3.11.9"},
                                                      [("libraries", "python 3.11.9, torch 2"),
                                                       ("CPU", "X (AVX2), 4 thread(s) of 8 CPUs")])])
def test_describe_rows(prov, expect):
    from oodbench.provenance import describe

    assert describe(prov) == expect
