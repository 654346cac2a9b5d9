"""Fixtures of the postprocessor tests: the fake text encoder and the small CLIP / classifier feature sets that
``oodbench.testing`` exports (the same inputs the exported conformance checks use)."""

from __future__ import annotations

import pytest

from oodbench.testing import fixtures
from oodbench.testing.fixtures import FakeTextEncoder


@pytest.fixture(scope="session")
def neglabel_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("neglabel-cache")


@pytest.fixture
def fake_encoder(neglabel_cache_dir):
    return FakeTextEncoder(cache_dir=neglabel_cache_dir)


@pytest.fixture(scope="session")
def clip_splits():
    """``{"fit", "id", "ood"}`` CLIP feature sets (D = 32, 5 classes, 6 patches)."""
    return fixtures.clip_splits()


@pytest.fixture(scope="session")
def classifier_splits():
    """``{"fit", "id", "ood"}`` classifier feature sets (F = 64, 5 classes; 300 fit samples)."""
    return fixtures.classifier_splits()
