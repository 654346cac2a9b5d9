"""SeTAR+FT and LoRA adapters: step-0 identity, only the factors train, exact restore, merged weights,
and the official trainable-parameter counts on full-size architectures."""

import math

import pytest
import torch

from oodbench.backbones import create_backbone
from oodbench.errors import UserError
from oodbench.methods.finetune.adapters import lora_adapters, setar_ft_adapters
from oodbench.methods.finetune.presets import OFFICIAL_CODE_LORA_ALPHA
from oodbench.methods.setar import Plan, PlanEntry

PROMPTS = ["a photo of a cat", "a photo of a dog", "a photo of a car"]


def outputs(bb, x):
    with torch.no_grad():
        o = bb.forward_from("vision", bb.hidden("vision", x, 0), 0)
        t = bb.encode_text(PROMPTS)
    return o.global_, o.local, t


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


MIXED_PLAN = Plan([PlanEntry("vision", "W_up", 1, 0.25), PlanEntry("vision", "W_up", 0, 0.0),
                   PlanEntry("text", "W_up", 0, 0.5), PlanEntry("vision", "W_q", 0, 0.25),
                   PlanEntry("vision", "W_v", 0, 0.25), PlanEntry("vision", "W_p", -1, 0.25)])


def test_setar_ft_step0_identity_and_frozen_base(tiny_clip, images):
    bb = tiny_clip
    ref = outputs(bb, images)
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in bb.model.named_parameters()}
    ad = setar_ft_adapters(bb, MIXED_PLAN)
    try:
        # ratio-0 entries get no adapter; ranks follow round(full * ratio) (64 * .25 = 16, 64 * .5 = 32, proj 32 * .25)
        assert sorted(ad.ranks().values()) == [8, 16, 16, 16, 32]
        for a, b in zip(outputs(bb, images), ref):
            assert (a - b).abs().max() <= 1e-5
        trainable = [p for p in bb.model.parameters() if p.requires_grad]
        assert len(trainable) == 2 * len(ad.terms)  # only every term's A and B; biases and the rest are frozen
        assert {id(p) for p in trainable} == {id(p) for p in ad.parameters()}
        # the frozen base is the kept principal part: W' = W - B A (B A = the minor components)
        term = ad.terms["visual.transformer.resblocks.1.mlp.c_fc.weight"]
        W = state["visual.transformer.resblocks.1.mlp.c_fc.weight"]
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        k = 64 - 16
        assert torch.allclose(term.B @ term.A, (U[:, k:] * S[k:]) @ Vh[k:], atol=1e-5)
        base = bb.model.visual.transformer.resblocks[1].mlp.c_fc.parametrizations.weight.original
        assert torch.allclose(base, (U[:, :k] * S[:k]) @ Vh[:k], atol=1e-5)
        # merged weights are base + B A, i.e. the original weights at step 0
        merged = ad.merged()
        assert torch.allclose(merged["visual.transformer.resblocks.1.mlp.c_fc.weight"], W, atol=1e-5)
        assert torch.allclose(merged["visual.proj"], state["visual.proj"], atol=1e-5)
    finally:
        ad.remove()
    after = bb.model.state_dict()
    assert set(after) == set(state) and all(torch.equal(after[k], state[k]) for k in state)
    assert {n: p.requires_grad for n, p in bb.model.named_parameters()} == flags


def test_setar_ft_training_changes_only_planned_weights(tiny_clip, images):
    bb = tiny_clip
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    ad = setar_ft_adapters(bb, Plan([PlanEntry("vision", "W_up", 1, 0.25)]))
    with torch.no_grad():
        ad.terms["visual.transformer.resblocks.1.mlp.c_fc.weight"].A.add_(0.1)
    merged = ad.merged()
    ad.remove()
    assert list(merged) == ["visual.transformer.resblocks.1.mlp.c_fc.weight"]
    assert not torch.allclose(merged["visual.transformer.resblocks.1.mlp.c_fc.weight"],
                              state["visual.transformer.resblocks.1.mlp.c_fc.weight"])


def test_lora_identity_scaling_and_init(tiny_clip, images):
    bb = tiny_clip
    ref = outputs(bb, images)
    ad = lora_adapters(bb, "W_up", 4, 16.0, seed=3)
    try:
        assert len(ad.terms) == 4  # 2 vision + 2 text blocks
        assert ad.num_trainable() == 4 * 4 * (64 + 256)
        for a, b in zip(outputs(bb, images), ref):
            assert (a - b).abs().max() <= 1e-5  # B = 0: the original model (kernel rounding only)
        term = next(iter(ad.terms.values()))
        assert term.scaling == 16.0 / 4
        assert torch.count_nonzero(term.B) == 0
        bound = 1 / math.sqrt(64)  # kaiming_uniform(a=sqrt(5)) on [r, in=64]
        assert term.A.abs().max() <= bound and term.A.abs().max() > 0.8 * bound
        with torch.no_grad():
            term.B.fill_(0.01)
        name = [n for n, t in ad._slots.items() if term in t.delta.terms][0]
        merged = ad.merged()[name]
        base = dict(bb.model.named_parameters())[name.replace(".weight", ".parametrizations.weight.original")]
        assert torch.allclose(merged, base + 4.0 * (term.B @ term.A), atol=1e-6)
    finally:
        ad.remove()
    # seeded: the same A again
    ad2 = lora_adapters(bb, "W_up", 4, 16.0, seed=3)
    ad3 = lora_adapters(create_backbone("test_clip_tiny", pretrained="random", seed=0), "W_up", 4, 16.0, seed=3)
    try:
        assert all(torch.equal(a.A, b.A) for a, b in zip(ad2.terms.values(), ad3.terms.values()))
    finally:
        ad2.remove()
        ad3.remove()


def test_lora_rank_too_large_changes_nothing(tiny_clip):
    bb = tiny_clip
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    with pytest.raises(UserError, match="exceeds"):
        lora_adapters(bb, "W_up", 65, 16.0)
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items())
    assert not any(n.count("parametrizations") for n, _ in bb.model.named_parameters())


def test_adapter_state_roundtrip(tiny_clip):
    bb = tiny_clip
    ad = setar_ft_adapters(bb, Plan([PlanEntry("text", "W_up", 1, 0.1)]))
    saved = ad.state()
    with torch.no_grad():
        for p in ad.parameters():
            p.zero_()
    ad.load_state(saved)
    assert all(torch.equal(ad.state()[k], v) for k, v in saved.items())
    with pytest.raises(UserError):
        ad.load_state({})
    ad.remove()


def test_lora_method_alpha_modes():
    from oodbench.methods.lora import LoraMethod

    class Ctx:
        backbone = create_backbone("test_clip_tiny", pretrained="random", seed=0)

    paper = LoraMethod(rank=4).settings(Ctx)
    official = LoraMethod(rank=4, alpha_mode="official-code").settings(Ctx)
    assert paper["alpha"] == 16.0 and paper["scaling"] == 4.0
    assert official["alpha"] == OFFICIAL_CODE_LORA_ALPHA == 8.0 and official["scaling"] == 2.0
    with pytest.raises(UserError, match="exclude"):
        LoraMethod(rank=4, alpha=3.0, alpha_mode="official-code").settings(Ctx)


# --------------------------------------------------------------------------------------------- full size
SPEC_48_CLIP_B = [("vision", 11, .15), ("vision", 10, .15), ("vision", 3, .05), ("vision", 0, .15), ("text", 6, .25),
                  ("text", 5, .10), ("text", 4, .20), ("text", 3, .05), ("text", 2, .05), ("text", 0, .20)]


@pytest.mark.slow
def test_official_trainable_parameter_counts_clip_b16():
    """Spec §10.1 / §10.4: CLIP-B SeTAR+FT with the §4.8 plan trains 2,584,320 parameters, LoRA r=32 2,457,600."""
    bb = create_backbone("clip_vit_b16", pretrained="random", seed=0)
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    plan = Plan([PlanEntry(t, "W_up", layer, r) for t, layer, r in SPEC_48_CLIP_B])
    ad = setar_ft_adapters(bb, plan)
    try:
        assert ad.num_trainable() == sum(p.numel() for p in bb.model.parameters() if p.requires_grad) == 2_584_320
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            g1 = bb.forward_from("vision", bb.hidden("vision", x, 0), 0).global_
    finally:
        ad.remove()
    with torch.no_grad():
        g0 = bb.forward_from("vision", bb.hidden("vision", x, 0), 0).global_
    assert (g1 - g0).abs().max() <= 1e-4 * g0.abs().max()  # step-0 identity at full size (fp32 SVD round trip)
    ad = lora_adapters(bb, "W_up", 32, 16.0)
    try:
        assert ad.num_trainable() == sum(p.numel() for p in bb.model.parameters() if p.requires_grad) == 2_457_600
    finally:
        ad.remove()
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items())


def test_classifier_backbone_setar_ft_identity_and_training():
    """Swin (timm classifier): vision-only adapters, logits and per-position logits feed the same loss."""
    import numpy as np

    from oodbench.data.sources import ArraySource
    from oodbench.methods.finetune.trainer import TrainConfig, train
    from oodbench.methods.finetune.weights import weight_forward

    bb = create_backbone("test_swin_tiny", pretrained="random")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = bb.forward_from("vision", bb.hidden("vision", x, 0), 0)
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    ad = setar_ft_adapters(bb, Plan([PlanEntry("vision", "W_up", 7, 0.4), PlanEntry("vision", "W_up", 2, 0.25)]))
    try:
        with torch.no_grad():
            out = bb.forward_from("vision", bb.hidden("vision", x, 0), 0)
        assert (out.global_ - ref.global_).abs().max() <= 1e-5 and (out.local - ref.local).abs().max() <= 1e-5
        rng = np.random.RandomState(0)
        src = ArraySource("val", rng.randint(0, 256, (4, 64, 64, 3)).astype(np.uint8), np.array([0, 1, 2, 3]))
        cfg = TrainConfig(epochs=1, lr=0.01, batch_size=4, lam=0.01, top_k=3, seed=0)
        log = train(weight_forward(bb, ad, [], ""), ad.parameters(), src, bb.preprocess(), cfg, quiet=True,
                    modules=[bb.model])
        assert len(log.steps) == 1 and math.isfinite(log.steps[0]["locoop_loss"])
        assert not bb.model.training  # back to eval after training
    finally:
        ad.remove()
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items())


SPEC_48_SWIN = [(3, 1, .4), (3, 0, .4), (2, 17, .4), (2, 16, .4), (2, 15, .4), (2, 10, .1), (2, 6, .25), (1, 1, .4),
                (1, 0, .3), (0, 0, .1)]


@pytest.mark.slow
def test_official_trainable_parameter_count_swinv2_b():
    """Spec §10.1: Swin SeTAR+FT with the §4.8 plan trains 6,468,480 parameters ([stage, block] -> flat block)."""
    bb = create_backbone("swinv2_b", pretrained="random")
    offset = [0, 2, 4, 22]
    plan = Plan([PlanEntry("vision", "W_up", offset[s] + b, r) for s, b, r in SPEC_48_SWIN])
    ad = setar_ft_adapters(bb, plan)
    try:
        assert ad.num_trainable() == 6_468_480
    finally:
        ad.remove()
    ad = lora_adapters(bb, "W_up", 112, 16.0)
    try:  # 112 x (h + 4h) per block, 2 / 2 / 18 / 2 blocks of h = 128 / 256 / 512 / 1024
        assert ad.num_trainable() == 112 * 5 * (2 * 128 + 2 * 256 + 18 * 512 + 2 * 1024)
    finally:
        ad.remove()
