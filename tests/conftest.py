"""Shared test settings: offline hubs, 2 CPU threads, seeded, a private cache and results root per test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache/oodbench or ./runs from a test."""
    base = tmp_path_factory.mktemp("oodbench-home")
    monkeypatch.setenv("OODBENCH_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("OODBENCH_RESULTS_ROOT", str(base / "runs"))
    yield
