"""Fixtures of the backbone tests: tiny seeded models and inputs."""

import pytest
import torch

from oodbench.backbones import create_backbone


@pytest.fixture
def tiny_clip():
    return create_backbone("test_clip_tiny")


@pytest.fixture
def clip_images():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 32, 32, generator=g)


PROMPTS = ["a photo of a cat", "a dog", "an extremely long prompt about a small brown dog on grass", "x"]


@pytest.fixture
def prompts():
    return list(PROMPTS)
