"""The registered modifiers: apply changes exactly the planned weights, restore is bit-exact, SVDs are cached."""

import pytest
import torch
from torch import nn

from oodbench.backbones.base import Backbone, TargetWeight
from oodbench.errors import IncompatibleError, UserError
from oodbench.methods.setar import lowrank
from oodbench.methods.none import NoModifier
from oodbench.methods.setar.modifier import SetarModifier
from oodbench.methods.setar.plan import NONE_HASH, Plan
from oodbench.registry import get, names


def _state(backbone):
    return {k: v.detach().clone() for k, v in backbone.model.state_dict().items()}


def _assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_registered():
    assert {"none", "setar"} <= set(names("modifiers"))
    assert get("modifiers", "setar") is SetarModifier and get("modifiers", "none") is NoModifier


PLAN = Plan.from_entries([("vision", "W_up", 1, 0.25), ("text", "W_up", 0, 0.4), ("vision", "W_q", 0, 0.3),
                          ("text", "W_v", 1, 0.2), ("vision", "W_p", -1, 0.1), ("text", "W_up", 1, 0.0)])


def test_apply_changes_exactly_the_planned_weights_and_restore_is_exact(tiny_clip):
    before = _state(tiny_clip)
    mod = SetarModifier().apply(tiny_clip, PLAN)
    after = _state(tiny_clip)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {
        "visual.transformer.resblocks.1.mlp.c_fc.weight",
        "transformer.resblocks.0.mlp.c_fc.weight",
        "visual.transformer.resblocks.0.attn.in_proj_weight",
        "transformer.resblocks.1.attn.in_proj_weight",
        "visual.proj",
    }
    # packed q/k/v: only the planned row slice changed
    d = 64
    w_before = before["visual.transformer.resblocks.0.attn.in_proj_weight"]
    w_after = after["visual.transformer.resblocks.0.attn.in_proj_weight"]
    assert not torch.equal(w_before[:d], w_after[:d]) and torch.equal(w_before[d:], w_after[d:])
    w_before = before["transformer.resblocks.1.attn.in_proj_weight"]
    w_after = after["transformer.resblocks.1.attn.in_proj_weight"]
    assert torch.equal(w_before[: 2 * d], w_after[: 2 * d]) and not torch.equal(w_before[2 * d :], w_after[2 * d :])
    assert mod.plan_hash == PLAN.hash()
    mod.restore()
    _assert_bit_identical(before, _state(tiny_clip))
    assert mod.plan_hash == NONE_HASH


def test_applied_weights_are_the_official_truncations(tiny_clip):
    originals = {(t.tower, t.weight_type, t.layer): t.get().clone() for wt in ("W_up", "W_q", "W_v", "W_p")
                 for t in tiny_clip.target_modules(wt)}
    SetarModifier().apply(tiny_clip, PLAN)
    for e in PLAN.entries:
        t = next(x for x in tiny_clip.target_modules(e.weight_type, e.tower) if x.layer == e.layer)
        w = originals[e.target].float()
        # straightforward reference: torch.linalg.svd, keep the full - round(full * ratio) largest
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        k = min(w.shape) - round(min(w.shape) * e.ratio)
        expected = u[:, :k] @ torch.diag(s[:k]) @ vh[:k] if e.ratio > 0 else w
        assert torch.allclose(t.get(), expected, atol=1e-5), e
        if e.ratio > 0:
            sv = torch.linalg.svdvals(t.get())
            assert sv[k:].abs().max() < 1e-4 and torch.allclose(sv[:k], s[:k], atol=1e-4)


def test_reapply_restores_first_and_svd_is_computed_once(tiny_clip, monkeypatch):
    calls = []
    real = lowrank.SVDFactors.of.__func__

    def counting(cls, w):
        calls.append(tuple(w.shape))
        return real(cls, w)

    monkeypatch.setattr(lowrank.SVDFactors, "of", classmethod(counting))
    before = _state(tiny_clip)
    mod = SetarModifier()
    mod.apply(tiny_clip, PLAN)
    first = _state(tiny_clip)
    other = Plan.from_entries([("vision", "W_up", 1, 0.1)])
    mod.apply(tiny_clip, other)
    mod.apply(tiny_clip, PLAN)
    _assert_bit_identical(first, _state(tiny_clip))  # not truncated twice
    assert len(calls) == 5  # one SVD per distinct weight, reused across applies
    mod.restore()
    _assert_bit_identical(before, _state(tiny_clip))


def test_minor_factors_complete_the_weight(tiny_clip):
    mod = SetarModifier().attach(tiny_clip)
    t = tiny_clip.target_modules("W_up", "vision")[1]
    w = t.get().clone()
    B, A = mod.minor_factors(t, 0.25)
    mod.set_ratio(t, 0.25)
    assert B.shape[1] == A.shape[0] == round(64 * 0.25)
    assert torch.allclose(t.get() + B @ A, w, atol=1e-5)
    mod.restore()
    assert torch.equal(t.get(), w)


def test_one_modifier_at_a_time(tiny_clip):
    a = SetarModifier().apply(tiny_clip, PLAN)
    with pytest.raises(UserError, match="already modified"):
        SetarModifier().apply(tiny_clip, PLAN)
    a.restore()
    SetarModifier().apply(tiny_clip, PLAN).restore()


def test_unknown_layer_is_an_incompatibility(tiny_clip):
    with pytest.raises(IncompatibleError, match="no vision W_up at layer 7"):
        SetarModifier().apply(tiny_clip, Plan.from_entries([("vision", "W_up", 7, 0.1)]))


def test_none_modifier(tiny_clip):
    before = _state(tiny_clip)
    m = NoModifier().apply(tiny_clip, Plan.from_entries([("vision", "W_up", 1, 0.0)]))
    assert m.plan_hash == NONE_HASH
    m.restore()
    _assert_bit_identical(before, _state(tiny_clip))
    with pytest.raises(UserError):
        NoModifier().apply(tiny_clip, PLAN)


class _ConvNet(Backbone):
    """A minimal backbone whose W_up is a 3x3 conv kernel and whose W_p is stored transposed, in fp16."""

    kind = "classifier"

    def __init__(self):
        torch.manual_seed(0)
        model = nn.Module()
        model.conv = nn.Conv2d(6, 12, 3)
        model.proj = nn.Parameter(torch.randn(12, 5).half())
        super().__init__(model, "convnet")

    def target_modules(self, weight_type, tower=None):
        m = self.model
        if weight_type == "W_up":
            return [TargetWeight("vision", "W_up", 0, "conv.weight", m.conv.weight, kernel_shape=tuple(m.conv.weight.shape))]
        if weight_type == "W_p":
            return [TargetWeight("vision", "W_p", -1, "proj", m.proj, transpose=True)]
        return []


def test_conv_kernels_and_half_transposed_projections():
    bb = _ConvNet()
    before = _state(bb)
    plan = Plan.from_entries([("vision", "W_up", 0, 0.5), ("vision", "W_p", -1, 2)])
    mod = SetarModifier().apply(bb, plan)
    k = bb.model.conv.weight.detach()
    assert k.shape == (12, 6, 3, 3)
    sv = torch.linalg.svdvals(k.reshape(12, -1))
    assert sv[6:].max() < 1e-4 and sv[5] > 1e-3  # 12 * 0.5 = 6 components removed
    p = bb.model.proj.detach()
    assert p.dtype == torch.float16 and torch.linalg.svdvals(p.float().t())[3:].max() < 1e-2  # rank 5 - 2
    assert torch.equal(bb.model.conv.bias, before["conv.bias"])  # bias untouched
    mod.restore()
    _assert_bit_identical(before, _state(bb))
