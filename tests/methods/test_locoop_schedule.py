"""LoCoOp's official optimisation (AtsuMiyai/LoCoOp on Dassl.pytorch): the learning rate of every step, the dropped
last batch and half-precision training.

The reference schedule is written twice, independently of ``lr_factor``: as the plain formula of Dassl's
``ConstantWarmupScheduler`` in front of ``CosineAnnealingLR(T_max = max_epoch)`` (constant ``warmup_lr`` for the W
warm-up epochs, then ``0.5 lr (1 + cos(pi (e - W) / E))``), and by stepping torch's own ``CosineAnnealingLR`` behind
a constant warm-up the way Dassl composes them (the cosine is not stepped during the warm-up).
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from oodbench.data.sources import ArraySource
from oodbench.methods.finetune.trainer import TrainConfig, lr_factor, train
from oodbench.methods.locoop import LocoopMethod, official_precision

SETTINGS = [(50, 1, 4), (5, 2, 3), (3, 1, 1), (1, 1, 2), (4, 0, 2)]  # (epochs, warm-up epochs, steps per epoch)
LR, WARMUP_LR = 0.002, 1e-5


def official_formula(epochs, warmup, steps_per_epoch):
    """The lr of every step, written plainly."""
    out = []
    for e in range(epochs):
        lr = WARMUP_LR if e < warmup else 0.5 * LR * (1 + math.cos(math.pi * (e - warmup) / epochs))
        out += [lr] * steps_per_epoch
    return out


def dassl_composition(epochs, warmup, steps_per_epoch):
    """torch's CosineAnnealingLR behind a constant warm-up, stepped once per epoch as Dassl does."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(epochs))
    last_epoch = 0  # the warm-up scheduler's own counter after its constructor's first step
    if warmup > 0:
        opt.param_groups[0]["lr"] = WARMUP_LR
    out = []
    for _ in range(epochs):
        out += [opt.param_groups[0]["lr"]] * steps_per_epoch
        if last_epoch >= warmup:  # _BaseWarmupScheduler.step: hand over to the cosine
            cosine.step()
        else:
            last_epoch += 1
            opt.param_groups[0]["lr"] = WARMUP_LR if last_epoch < warmup else cosine.get_last_lr()[0]
    return out


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
@pytest.mark.parametrize("epochs, warmup, steps", SETTINGS)
def test_lr_of_every_step_equals_the_official_schedule(epochs, warmup, steps):
    cfg = TrainConfig(epochs=epochs, lr=LR, schedule="cosine-epoch", warmup_epochs=warmup, warmup_lr=WARMUP_LR)
    ours = [LR * lr_factor(cfg, s, steps) for s in range(epochs * steps)]
    np.testing.assert_allclose(ours, official_formula(epochs, warmup, steps), rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours, dassl_composition(epochs, warmup, steps), rtol=1e-9, atol=0)
    if warmup and epochs > warmup:
        assert ours[warmup * steps] == pytest.approx(LR)  # the cosine starts at the full lr after the warm-up


def test_official_schedule_totals():
    """50 epochs, 1 warm-up: the old cos(pi e / E) schedule summed 3.9 % less learning rate."""
    cfg = TrainConfig(epochs=50, lr=LR, schedule="cosine-epoch", warmup_epochs=1, warmup_lr=WARMUP_LR)
    ours = sum(lr_factor(cfg, e, 1) for e in range(50))
    late = sum(WARMUP_LR / LR if e < 1 else 0.5 * (1 + math.cos(math.pi * e / 50)) for e in range(50))
    assert (ours - late) / ours == pytest.approx(0.039, abs=0.001)


# ------------------------------------------------------------------------------------- the real training loop
def _source(n, seed=0):
    rng = np.random.RandomState(seed)
    return ArraySource("val", rng.randint(0, 256, (n, 4, 4, 3)).astype(np.uint8), np.arange(n) % 3)


def _transform(img):
    return torch.as_tensor(np.array(img), dtype=torch.float32).permute(2, 0, 1) / 255.0


def _toy(n, **kw):
    """Train a linear classifier on flattened 4x4 images; return the log and the weight."""
    w = torch.nn.Parameter(torch.linspace(-1, 1, 3 * 48).reshape(3, 48))

    def forward(images):
        return images.flatten(1) @ w.t() * 10.0, None

    cfg = TrainConfig(**{"epochs": 3, "lr": LR, "batch_size": 4, "lam": 0.0, "top_k": 1, "seed": 0,
                         "schedule": "cosine-epoch", "warmup_epochs": 1, "warmup_lr": WARMUP_LR, **kw})
    return train(forward, [w], _source(n), _transform, cfg, quiet=True), w


@pytest.mark.parametrize("epochs, warmup", [(3, 1), (5, 2)])
def test_training_loop_uses_the_official_lr_at_every_step(epochs, warmup):
    log, _ = _toy(10, epochs=epochs, warmup_epochs=warmup, drop_last=True)
    steps = 10 // 4
    assert [r["lr"] for r in log.steps] == pytest.approx(official_formula(epochs, warmup, steps), rel=1e-12)


def test_last_incomplete_batch_is_dropped_as_dassl_does():
    dropped, _ = _toy(10, drop_last=True)
    kept, _ = _toy(10)
    assert [r["batch"] for r in dropped.steps] == [4, 4] * 3
    assert [r["batch"] for r in kept.steps] == [4, 4, 2] * 3
    # Dassl drops only when the set holds at least one batch: 3 images, batch 4 -> one batch of 3
    small, _ = _toy(3, drop_last=True)
    assert [r["batch"] for r in small.steps] == [3] * 3


def test_fp16_keeps_and_updates_the_trainable_tensors_in_half_precision():
    half, w16 = _toy(8, precision="fp16", lr=0.5, warmup_epochs=0)
    full, w32 = _toy(8, lr=0.5, warmup_epochs=0)
    assert w16.dtype == torch.float32  # handed back in the caller's dtype
    assert torch.equal(w16.detach(), w16.detach().half().float())  # every value is an fp16 number
    assert not torch.equal(w32.detach(), w32.detach().half().float())
    assert torch.allclose(w16, w32, atol=0.02) and not torch.equal(w16, w32)
    assert len(half.steps) == len(full.steps) == 6


def _ctx(device):
    backbone = SimpleNamespace(family="clip-b16", device=torch.device(device), kind="clip")
    spec = SimpleNamespace(class_names=[f"c{i}" for i in range(1000)])
    return SimpleNamespace(backbone=backbone, benchmark=SimpleNamespace(spec=spec), seed=None)


def test_locoop_defaults_are_the_official_run():
    cfg = LocoopMethod().train_config(_ctx("cpu"))
    assert (cfg.schedule, cfg.warmup_epochs, cfg.warmup_lr, cfg.lr, cfg.epochs) == ("cosine-epoch", 1, 1e-5, 0.002, 50)
    assert cfg.drop_last and cfg.batch_size == 32
    assert cfg.precision == "fp32" and official_precision("cuda:0") == "fp16"
    assert LocoopMethod().train_config(_ctx("cuda")).precision == "fp16"
    assert LocoopMethod(precision="bf16").train_config(_ctx("cuda")).precision == "bf16"
