"""Fixtures of the digits tests: the built benchmark and the shipped digits_clip backbone (built once per session)."""

import pytest


@pytest.fixture(scope="session")
def digits_data():
    from oodbench.datasets.digits import build_digits

    return build_digits()


@pytest.fixture(scope="session")
def digits_backbone():
    from oodbench.backbones import create_backbone

    return create_backbone("digits_clip")
