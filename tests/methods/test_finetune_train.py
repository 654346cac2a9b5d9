"""The fine-tuning loop: one SGD step of SeTAR+FT equals a step computed by hand, the schedules, seeding, logs."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oodbench.data.sources import ArraySource
from oodbench.errors import UserError
from oodbench.methods.finetune.adapters import setar_ft_adapters
from oodbench.methods.finetune.trainer import TrainConfig, lr_factor, train
from oodbench.methods.finetune.weights import weight_forward
from oodbench.methods.setar import Plan, PlanEntry

CLASSES = ["cat", "dog", "car", "tree"]
PROMPT = "a photo of a {}"


@pytest.fixture
def source():
    rng = np.random.RandomState(0)
    return ArraySource("val", rng.randint(0, 256, (8, 32, 32, 3)).astype(np.uint8), np.array([0, 1, 2, 3, 0, 1, 2, 3]))


class PlainLoRALinear(nn.Module):
    """``x W'^T + b + (x A^T) B^T``: the low-rank term applied to the input, as LoRA papers write it."""

    def __init__(self, W_prime, bias, B, A):
        super().__init__()
        self.W, self.b = W_prime, bias
        self.B = B.clone().requires_grad_(True)
        self.A = A.clone().requires_grad_(True)

    def forward(self, x):
        return F.linear(x, self.W, self.b) + F.linear(F.linear(x, self.A), self.B)


def plain_locoop_loss(g, loc, y, lam, k):
    """CE(g, y) + lam * mean over OOD patches of sum_c p log(p + 1e-5); a patch is OOD when y is not in its top k."""
    ce = F.cross_entropy(g, y)
    topk = loc.topk(k, dim=-1).indices
    ood = ~(topk == y[:, None, None]).any(-1)
    p = F.softmax(loc[ood], dim=-1)
    return ce + lam * (p * torch.log(p + 1e-5)).sum(-1).mean()


def test_one_sgd_step_equals_hand_computed_step(tiny_clip, source):
    bb = tiny_clip
    ref = copy.deepcopy(bb)
    plan = Plan([PlanEntry("vision", "W_up", 1, 0.25), PlanEntry("text", "W_up", 0, 0.5)])
    lr, wd, lam, k = 0.01, 0.05, 0.5, 1  # a large weight decay, so that a missing one would show

    # --- by hand: SVD split, plain LoRA modules, plain loss, autograd, SGD update p - lr (g + wd p)
    hand = {}
    initial = []
    for blk, removed in ((ref.model.visual.transformer.resblocks[1], 16), (ref.model.transformer.resblocks[0], 32)):
        lin = blk.mlp.c_fc
        W = lin.weight.detach()
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        kept = W.shape[1] - removed
        W_prime = (U[:, :kept] * S[:kept]) @ Vh[:kept]
        B0 = U[:, kept:] * S[kept:].sqrt()
        A0 = S[kept:].sqrt()[:, None] * Vh[kept:]
        blk.mlp.c_fc = PlainLoRALinear(W_prime, lin.bias.detach(), B0, A0)
        initial.append((B0, A0))
        hand[blk.mlp.c_fc] = None
    images = torch.stack([bb.preprocess()(source.load(i)) for i in range(len(source))])
    y = torch.as_tensor(source.labels)
    out = ref.forward_from("vision", ref.hidden("vision", images, 0), 0)
    text = ref.encode_text([PROMPT.format(c) for c in CLASSES])
    tn = text / text.norm(dim=-1, keepdim=True)
    s = ref.logit_scale()
    g = s * (out.global_ / out.global_.norm(dim=-1, keepdim=True)) @ tn.t()
    loc = s * (out.local / out.local.norm(dim=-1, keepdim=True)) @ tn.t()
    loss = plain_locoop_loss(g, loc, y, lam, k)
    loss.backward()
    updates = [(-lr * (m.B.grad + wd * m.B.detach()), -lr * (m.A.grad + wd * m.A.detach())) for m in hand]

    # --- the trainer: one epoch of one batch (the whole set), no augmentation
    ad = setar_ft_adapters(bb, plan)
    try:
        cfg = TrainConfig(epochs=1, lr=lr, batch_size=8, lam=lam, top_k=k, weight_decay=wd, seed=0)
        log = train(weight_forward(bb, ad, CLASSES, PROMPT), ad.parameters(), source, bb.preprocess(), cfg, quiet=True)
        assert len(log.steps) == 1
        assert log.steps[0]["locoop_loss"] == pytest.approx(float(loss.detach()), abs=1e-5)
        terms = list(ad.terms.values())
        for term, (B0, A0), (dB, dA) in zip(terms, initial, updates):
            for got, start, step in ((term.B, B0, dB), (term.A, A0, dA)):
                delta = got.detach() - start
                assert step.abs().max() > 1e-4  # the step is large enough to compare
                assert torch.allclose(delta, step, atol=1e-7, rtol=1e-3), (delta - step).abs().max()
    finally:
        ad.remove()


def test_cosine_schedules():
    cfg = TrainConfig(epochs=5, lr=0.01)
    total = 50
    for s in (0, 1, 25, 49):
        assert lr_factor(cfg, s, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * s / total)))
    assert lr_factor(cfg, 25, 10) == pytest.approx(0.5)
    ep = TrainConfig(epochs=50, lr=0.002, schedule="cosine-epoch", warmup_epochs=1, warmup_lr=1e-5)
    assert lr_factor(ep, 0, 4) == lr_factor(ep, 3, 4) == pytest.approx(1e-5 / 0.002)
    assert lr_factor(ep, 4, 4) == lr_factor(ep, 7, 4) == 1.0  # the cosine starts at the full lr after the warm-up
    assert lr_factor(ep, 49 * 4, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 48 / 50)))


def test_bad_settings_are_user_errors():
    for kwargs in ({"epochs": 0}, {"batch_size": 0}, {"lr": 0}, {"precision": "fp8"}, {"schedule": "step"},
                   {"top_k": -1}):
        with pytest.raises(UserError):
            TrainConfig(**kwargs)


def _run(bb, source, **kw):
    plan = Plan([PlanEntry("vision", "W_up", 1, 0.25), PlanEntry("text", "W_up", 1, 0.25)])
    ad = setar_ft_adapters(bb, plan)
    try:
        from oodbench.methods.finetune.augment import CLIP_AUGMENT, train_transform

        cfg = TrainConfig(**{"epochs": 2, "lr": 0.01, "batch_size": 3, "lam": 0.3, "top_k": 1, "seed": 0, **kw})
        return train(weight_forward(bb, ad, CLASSES, PROMPT), ad.parameters(), source,
                     train_transform(bb, CLIP_AUGMENT), cfg, quiet=True), ad.state()
    finally:
        ad.remove()


def test_training_is_seeded_and_logged(tiny_clip, source):
    log1, s1 = _run(tiny_clip, source)
    log2, s2 = _run(tiny_clip, source)
    log3, _ = _run(tiny_clip, source, seed=1)
    assert [r["locoop_loss"] for r in log1.steps] == [r["locoop_loss"] for r in log2.steps]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert [r["locoop_loss"] for r in log1.steps] != [r["locoop_loss"] for r in log3.steps]
    assert len(log1.steps) == 2 * 3 and [r["batch"] for r in log1.steps] == [3, 3, 2, 3, 3, 2]
    assert [r["epoch"] for r in log1.steps] == [0, 0, 0, 1, 1, 1]
    lrs = [r["lr"] for r in log1.steps]
    assert lrs == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)])
    csv_lines = log1.to_csv().strip().splitlines()
    assert csv_lines[0].split(",")[:4] == ["step", "epoch", "lr", "locoop_loss"] and len(csv_lines) == 7
    row = log1.steps[0]
    assert row["locoop_loss"] == pytest.approx(row["loss_id"] + 0.3 * row["loss_ood"], abs=1e-5)
    assert len(log1.to_dict()["epochs"]) == 2


def test_training_lowers_the_loss(tiny_clip, source):
    """Without augmentation, a few epochs at a higher learning rate fit the 8 images: the loss goes down."""
    plan = Plan([PlanEntry("vision", "W_up", 1, 0.4), PlanEntry("vision", "W_up", 0, 0.4)])
    ad = setar_ft_adapters(tiny_clip, plan)
    try:
        cfg = TrainConfig(epochs=8, lr=0.2, batch_size=8, lam=0.1, top_k=1, seed=0)
        log = train(weight_forward(tiny_clip, ad, CLASSES, PROMPT), ad.parameters(), source, tiny_clip.preprocess(),
                    cfg, quiet=True)
    finally:
        ad.remove()
    losses = [r["locoop_loss"] for r in log.steps]
    assert losses[-1] < losses[0] - 0.05


def test_bf16_autocast_is_close_to_fp32(tiny_clip, source):
    l32, _ = _run(tiny_clip, source, epochs=1)
    l16, _ = _run(tiny_clip, source, epochs=1, precision="bf16")
    a, b = l32.steps[0]["locoop_loss"], l16.steps[0]["locoop_loss"]
    assert math.isfinite(b) and b == pytest.approx(a, rel=0.05)
