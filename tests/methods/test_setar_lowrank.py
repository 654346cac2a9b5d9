"""The low-rank operation: the official ratio -> rank rule, which components go, W' + B A = W."""

import pytest
import torch

from oodbench.errors import UserError
from oodbench.methods.setar.lowrank import (
    SVDFactors,
    kept_rank,
    removed_factors,
    removed_rank,
    split_components,
    truncated_weight,
)


@pytest.mark.parametrize("full, ratio, removed", [(768, 0.15, 115), (512, 0.05, 26), (1024, 0.4, 410), (768, 0.0, 0),
                                                   (128, 0.05, 6), (8, 0.05, 0), (10, 0.25, 2), (10, 0.45, 4)])
def test_removed_rank_matches_the_paper_and_python_round(full, ratio, removed):
    # (10, 0.25) -> 2.5 -> 2 and (10, 0.45) -> 4.5 -> 4: banker's rounding of Python's round
    assert removed_rank(full, ratio) == removed


def test_kept_rank_is_full_minus_rounded_removed_on_every_paper_dimension():
    ratios = [0.05 * i for i in range(1, 9)]
    for full in (128, 256, 512, 768, 1024):
        for r in ratios:
            assert kept_rank(full, r) == full - round(full * r)


def test_absolute_rank_and_errors():
    assert removed_rank(64, 5) == 5
    assert removed_rank(64, 5.0) == 5
    with pytest.raises(UserError):
        removed_rank(64, 5.5)
    with pytest.raises(UserError):
        removed_rank(64, 64)
    with pytest.raises(UserError):
        removed_rank(64, -0.1)


def _matrix(m=48, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    # distinct, well separated singular values 20, 19, ..., 1
    u, _ = torch.linalg.qr(torch.randn(m, n, generator=g))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    s = torch.arange(n, 0, -1).float()
    return (u * s) @ v.t(), s


def test_minor_principal_random_remove_the_right_singular_values():
    w, s = _matrix()
    f = SVDFactors.of(w)
    minor = torch.linalg.svdvals(truncated_weight(f, 5, "minor"))
    assert torch.allclose(minor[:15], s[:15], atol=1e-4) and minor[15:].abs().max() < 1e-4
    principal = torch.linalg.svdvals(truncated_weight(f, 5, "principal"))
    assert torch.allclose(principal[:15], s[5:], atol=1e-4) and principal[15:].abs().max() < 1e-4
    kept, rem = split_components(20, 5, "random", seed=3)
    expected = torch.sort(s[kept], descending=True).values
    rnd = torch.linalg.svdvals(truncated_weight(f, 5, "random", seed=3))
    assert torch.allclose(rnd[:15], expected, atol=1e-4) and rnd[15:].abs().max() < 1e-4
    # the random choice is seeded, a permutation, and differs between seeds
    assert torch.equal(split_components(20, 5, "random", 3)[1], rem)
    assert sorted(torch.cat([kept, rem]).tolist()) == list(range(20))
    assert not torch.equal(split_components(20, 5, "random", 4)[1], rem)


def test_random_prune_uses_randperm_with_the_seed():
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(7))
    kept, rem = split_components(20, 6, "random", seed=7)
    assert torch.equal(rem, perm[:6]) and torch.equal(kept, perm[6:])


def test_truncation_equals_the_official_rebuild():
    w, _ = _matrix(64, 32, seed=2)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    k = 32 - 7
    v0 = vh[:k].t()  # torch.svd's V[:, :k]
    official = torch.mm(u[:, :k], torch.mm(torch.diag(s[:k]), v0.t()))
    assert torch.allclose(truncated_weight(SVDFactors.of(w), 7), official, atol=1e-5)


@pytest.mark.parametrize("prune", ["minor", "principal", "random"])
@pytest.mark.parametrize("shape", [(48, 20), (20, 48)])
def test_truncated_plus_removed_factors_is_the_original(prune, shape):
    g = torch.Generator().manual_seed(5)
    w = torch.randn(*shape, generator=g)
    f = SVDFactors.of(w)
    r = removed_rank(min(shape), 0.35)
    B, A = removed_factors(f, r, prune, seed=5)
    assert B.shape == (shape[0], r) and A.shape == (r, shape[1])
    assert torch.allclose(truncated_weight(f, r, prune, seed=5) + B @ A, w, atol=1e-5)
    # B and A split sqrt(S1) evenly: columns of B and rows of A have the same norms
    assert torch.allclose(B.norm(dim=0), A.norm(dim=1), atol=1e-5)


def test_svd_factors_are_float32_of_a_half_weight():
    w = torch.randn(16, 8).half()
    f = SVDFactors.of(w)
    assert f.U.dtype == torch.float32 and f.full_rank == 8
    assert torch.allclose((f.U * f.S) @ f.Vh, w.float(), atol=1e-5)
