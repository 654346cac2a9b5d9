"""Parity of every score with a straightforward re-implementation of the reference formula, written here from
the spec (setar-reference §7–§9, openood-reference §4) with loops / torch, on random features; plus
hand-computed tiny cases for ReAct, DICE and ASH, and KNN against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oodbench.features import Features
from oodbench.registry import get

TOL = 1e-6


def _rng(seed=0):
    return np.random.default_rng(seed)


def _clip_feats(n=40, d=16, c=7, p=5, seed=0):
    r = _rng(seed)
    shared = {"text": r.standard_normal((c, d)).astype(np.float32)}
    arrays = {"image": (3 * r.standard_normal((n, d))).astype(np.float32),
              "local": (3 * r.standard_normal((n, p, d))).astype(np.float32),
              "logits": (10 * r.standard_normal((n, c))).astype(np.float32)}
    return Features(arrays, shared, "rand")


def _cls_feats(n=40, f=24, c=6, seed=0):
    """Post-ReLU-like penultimate features and one last linear layer (the same for every seed)."""
    r = _rng(seed)
    h = np.maximum(r.standard_normal((n, f)), 0).astype(np.float32) * 2
    fc = _rng(1234)
    w = fc.standard_normal((c, f)).astype(np.float32)
    b = fc.standard_normal(c).astype(np.float32)
    return Features({"penultimate": h, "logits": h @ w.T + b}, {"fc_weight": w, "fc_bias": b}, "rand")


def _norm32(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.float32(math.sqrt(float(np.sum(v.astype(np.float64) ** 2))))


def _softmax32(z):
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(z - z.max())
    return e / e.sum()


def _lse(z):
    z = [float(v) for v in z]
    m = max(z)
    return m + math.log(sum(math.exp(v - m) for v in z))


# ------------------------------------------------------------------------------------------ CLIP scores
@pytest.mark.parametrize("tau", [1.0, 0.5, 0.01])
def test_mcm_matches_loop_reference(tau):
    f = _clip_feats()
    text = [_norm32(t) for t in f["text"]]
    expected = []
    for x in f["image"]:
        xn = _norm32(x)
        cos = np.array([np.dot(xn, t) for t in text], dtype=np.float32)
        expected.append(_softmax32(cos / np.float32(tau)).max())
    got = get("postprocessors", "mcm")(tau=tau).score(f)
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


def test_mcm_is_float32_like_the_reference():
    # 1000 classes at tau=1: scores ~1e-3 with float32 ties; the values are exactly float32 numbers.
    r = _rng(5)
    f = Features({"image": r.standard_normal((200, 8)).astype(np.float32)},
                 {"text": r.standard_normal((1000, 8)).astype(np.float32)})
    s = get("postprocessors", "mcm")().score(f)
    assert np.all(s.astype(np.float32).astype(np.float64) == s)
    assert 0.5e-3 < s.min() and s.max() < 5e-3


@pytest.mark.parametrize("lam,tau", [(1.0, 1.0), (0.5, 1.0), (1.0, 0.1)])
def test_glmcm_matches_loop_reference(lam, tau):
    f = _clip_feats()
    text = [_norm32(t) for t in f["text"]]
    expected = []
    for x, patches in zip(f["image"], f["local"]):
        g = _softmax32(np.array([np.dot(_norm32(x), t) for t in text], np.float32) / np.float32(tau)).max()
        best = 0.0
        for patch in patches:
            pc = np.array([np.dot(_norm32(patch), t) for t in text], np.float32)
            best = max(best, float(_softmax32(pc / np.float32(tau)).max()))
        expected.append(float(g) + lam * best)
    got = get("postprocessors", "glmcm")(tau=tau, lambda_local=lam).score(f)
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


def test_glmcm_with_lambda_zero_is_mcm():
    f = _clip_feats()
    np.testing.assert_array_equal(get("postprocessors", "glmcm")(lambda_local=0.0).score(f),
                                  get("postprocessors", "mcm")().score(f))


# ----------------------------------------------------------------------------------------- logit scores
@pytest.mark.parametrize("t", [1.0, 2.0, 100.0])
def test_msp_matches_torch_reference(t):
    f = _clip_feats()
    expected = torch.softmax(torch.tensor(f["logits"], dtype=torch.float64) / t, dim=1).max(dim=1).values.numpy()
    np.testing.assert_allclose(get("postprocessors", "msp")(temperature=t).score(f), expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("t", [1.0, 0.5, 10.0])
def test_energy_matches_loop_reference(t):
    f = _clip_feats()
    expected = [t * _lse(row / t) for row in f["logits"].astype(np.float64)]
    np.testing.assert_allclose(get("postprocessors", "energy")(temperature=t).score(f), expected, rtol=TOL, atol=TOL)


def test_maxlogit_matches_loop_reference():
    f = _clip_feats()
    expected = [max(float(v) for v in row) for row in f["logits"]]
    np.testing.assert_allclose(get("postprocessors", "maxlogit")().score(f), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------------------- feature scores
def _percentile_by_hand(values, p):
    v = sorted(float(x) for x in np.ravel(values))
    rank = p / 100 * (len(v) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


def _energy_fc(h, w, b):
    return [_lse([sum(float(hj) * float(wj) for hj, wj in zip(row, wrow)) + float(bc) for wrow, bc in zip(w, b)])
            for row in h]


@pytest.mark.parametrize("p", [85, 90, 99])
def test_react_matches_loop_reference(p):
    fit, test = _cls_feats(seed=1), _cls_feats(seed=2)
    c = _percentile_by_hand(fit["penultimate"], p)
    clipped = [[min(float(v), c) for v in row] for row in test["penultimate"]]
    expected = _energy_fc(clipped, test["fc_weight"], test["fc_bias"])
    pp = get("postprocessors", "react")(percentile=p).fit(fit)
    assert pp.threshold_ == pytest.approx(c, rel=1e-6)
    np.testing.assert_allclose(pp.score(test), expected, rtol=TOL, atol=TOL)


def test_react_hand_computed():
    fit = Features({"penultimate": np.array([[0, 1], [2, 3], [4, 5]], np.float32)})
    shared = {"fc_weight": np.eye(2, dtype=np.float32), "fc_bias": np.zeros(2, np.float32)}
    test = Features({"penultimate": np.array([[1, 4], [3, 0]], np.float32)}, shared)
    pp = get("postprocessors", "react")(percentile=50).fit(fit)
    assert pp.threshold_ == 2.5  # median of 0..5
    # row 1: min([1, 4], 2.5) = [1, 2.5]; row 2: [2.5, 0]
    expected = [math.log(math.exp(1) + math.exp(2.5)), math.log(math.exp(2.5) + 1)]
    np.testing.assert_allclose(pp.score(test), expected, rtol=1e-12)
    assert test["penultimate"][0, 1] == 4  # the cached feature is not clipped in place


@pytest.mark.parametrize("p", [10, 50, 90])
def test_dice_matches_loop_reference(p):
    fit, test = _cls_feats(seed=3), _cls_feats(seed=4)
    w, b = fit["fc_weight"], fit["fc_bias"]
    n, f = fit["penultimate"].shape
    mean = [sum(float(fit["penultimate"][i, j]) for i in range(n)) / n for j in range(f)]
    contrib = [[mean[j] * float(w[c, j]) for j in range(f)] for c in range(len(w))]
    thr = _percentile_by_hand(contrib, p)
    masked = [[float(w[c, j]) if contrib[c][j] > thr else 0.0 for j in range(f)] for c in range(len(w))]
    kept = sum(v > thr for row in contrib for v in row)
    assert kept == pytest.approx((100 - p) / 100 * w.size, abs=1)
    expected = _energy_fc(test["penultimate"], masked, b)
    pp = get("postprocessors", "dice")(percentile=p).fit(fit)
    np.testing.assert_allclose(pp.score(test), expected, rtol=TOL, atol=TOL)


def test_dice_hand_computed():
    shared = {"fc_weight": np.array([[1, -1], [3, 0.5]], np.float32), "fc_bias": np.zeros(2, np.float32)}
    fit = Features({"penultimate": np.array([[0, 1], [2, 3]], np.float32)}, shared)  # mean [1, 2]
    # contributions [[1, -2], [3, 1]], median (p=50) = 1, kept: only 3 -> masked W = [[0, 0], [3, 0]]
    pp = get("postprocessors", "dice")(percentile=50).fit(fit)
    np.testing.assert_array_equal(pp.mask_, [[False, False], [True, False]])
    test = Features({"penultimate": np.array([[1, 1]], np.float32)}, shared)
    np.testing.assert_allclose(pp.score(test), [math.log(1 + math.exp(3))], rtol=1e-12)


def _ash_reference(h, percentile, variant):
    """andrijazz/ash semantics on the pooled feature seen as [B, D, 1, 1], in torch, on a clone."""
    x = torch.tensor(h, dtype=torch.float64).clone()[:, :, None, None]
    b, c, hh, ww = x.shape
    s1 = x.sum(dim=[1, 2, 3])
    n = x.shape[1:].numel()
    k = n - int(np.round(n * percentile / 100.0))
    t = x.view((b, c * hh * ww))
    v, i = torch.topk(t, k, dim=1)
    if variant == "b":
        t.zero_().scatter_(dim=1, index=i, src=(s1 / k).unsqueeze(1).expand(v.shape).contiguous())
    else:
        t.zero_().scatter_(dim=1, index=i, src=v)
        if variant == "s":
            s2 = x.sum(dim=[1, 2, 3])
            x = x * torch.exp(s1 / s2)[:, None, None, None]
    return x.view(b, -1).numpy()


@pytest.mark.parametrize("variant", ["p", "b", "s"])
@pytest.mark.parametrize("p", [65, 90])
def test_ash_matches_reference_semantics(variant, p):
    test = _cls_feats(seed=5)
    test.arrays["penultimate"] = test["penultimate"] + np.float32(1e-3) * _rng(9).random(test["penultimate"].shape,
                                                                                         dtype=np.float32)  # no ties
    shaped = _ash_reference(test["penultimate"], p, variant)
    expected = _energy_fc(shaped, test["fc_weight"], test["fc_bias"])
    from oodbench.postprocessors.ash import ash

    np.testing.assert_allclose(ash(test["penultimate"], p, variant), shaped, rtol=1e-12, atol=1e-12)
    got = get("postprocessors", f"ash_{variant}")(percentile=p).score(test)
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


def test_ash_hand_computed():
    from oodbench.postprocessors.ash import ash, ash_keep_count

    h = np.array([[1, 2, 3, 4]], np.float32)  # n=4, p=50: k = 4 - round(2) = 2, keep [3, 4]
    np.testing.assert_array_equal(ash(h, 50, "p"), [[0, 0, 3, 4]])
    np.testing.assert_array_equal(ash(h, 50, "b"), [[0, 0, 5, 5]])  # s1 / k = 10 / 2
    e = math.exp(10 / 7)  # s1 = 10, s2 = 7
    np.testing.assert_allclose(ash(h, 50, "s"), [[0, 0, 3 * e, 4 * e]], rtol=1e-12)
    shared = {"fc_weight": np.eye(4, dtype=np.float32), "fc_bias": np.zeros(4, np.float32)}
    f = Features({"penultimate": h.copy()}, shared)
    assert get("postprocessors", "ash_b")(percentile=50).score(f)[0] == pytest.approx(math.log(2 + 2 * math.exp(5)))
    assert get("postprocessors", "ash_s")(percentile=50).score(f)[0] == pytest.approx(
        math.log(2 + math.exp(3 * e) + math.exp(4 * e)))
    np.testing.assert_array_equal(f["penultimate"], h)  # not shaped in place
    # numpy rounding is half to even, as the reference: n=10 -> p=25: round(2.5)=2 -> k=8; p=35: round(3.5)=4
    assert ash_keep_count(10, 25) == 8 and ash_keep_count(10, 35) == 6 and ash_keep_count(2048, 90) == 205
    # ties at the k-th value go to the lower index
    np.testing.assert_array_equal(ash(np.ones((1, 4), np.float32), 50, "p"), [[1, 1, 0, 0]])


def test_ash_prunes_everything_is_a_user_error():
    from oodbench.errors import UserError

    f = Features({"penultimate": np.ones((2, 4), np.float32)},
                 {"fc_weight": np.eye(4, dtype=np.float32), "fc_bias": np.zeros(4, np.float32)})
    with pytest.raises(UserError, match="prunes all"):
        get("postprocessors", "ash_s")(percentile=100).score(f)


# --------------------------------------------------------------------------------------------------- KNN
@pytest.mark.parametrize("k", [1, 5, 50])
def test_knn_matches_brute_force_torch(k):
    fit, test = _cls_feats(n=120, seed=6), _cls_feats(n=30, seed=7)
    bank = torch.tensor(fit["penultimate"], dtype=torch.float64)
    bank = bank / bank.norm(dim=1, keepdim=True) + 1e-10
    q = torch.tensor(test["penultimate"], dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True) + 1e-10
    d2 = ((q[:, None, :] - bank[None, :, :]) ** 2).sum(-1)
    expected = -torch.sort(d2, dim=1).values[:, k - 1].numpy()
    got = get("postprocessors", "knn")(k=k).fit(fit).score(test)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


def test_knn_hand_computed_and_k_clipping(caplog):
    fit = Features({"penultimate": np.array([[2, 0], [0, 3], [-1, 0]], np.float32)})
    test = Features({"penultimate": np.array([[5, 0]], np.float32)})
    pp = get("postprocessors", "knn")(k=2).fit(fit)
    # normalised bank [1,0], [0,1], [-1,0]; squared distances of [1,0]: 0, 2, 4 -> 2nd nearest = 2
    assert pp.score(test)[0] == pytest.approx(-2.0, abs=1e-6)
    pp.set_params(k=10)
    with caplog.at_level("WARNING", logger="oodbench"):
        assert pp.score(test)[0] == pytest.approx(-4.0, abs=1e-6)
    assert "larger than the 3 ID fit features" in caplog.text
