"""Fixtures of the SeTAR tests: the plain reference searcher on the import path, tiny backbones, val sets."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture
def tiny_clip():
    from oodbench.backbones import create_backbone

    return create_backbone("test_clip_tiny", pretrained="random", seed=0)


@pytest.fixture
def val_set():
    """40 random 32-px images of 10 classes (uneven last aggregation batch with batch size 16)."""
    g = torch.Generator().manual_seed(1)
    images = torch.randn(40, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (40,), generator=g)
    names = ["cat", "dog", "car", "tree", "boat", "house", "bird", "plane", "apple", "chair"]
    return images, labels, names


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and a busy 2-core machine makes two OpenMP threads crawl."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



@pytest.fixture
def digits_inputs():
    """The shipped digits model and the digits benchmark's ID val split, preprocessed by it."""
    from oodbench.backbones import create_backbone
    from oodbench.datasets.digits import CLASS_NAMES, PROMPT, resolve_digits

    bb = create_backbone("digits_clip")
    val = resolve_digits().id_val
    pre = bb.preprocess()
    images = torch.stack([pre(val.load(i)) for i in range(len(val))])
    return bb, images, torch.from_numpy(val.labels.copy()), list(CLASS_NAMES), PROMPT
