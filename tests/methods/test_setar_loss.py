"""The LoCoOp loss against a straightforward per-image, per-patch implementation of the spec (§5)."""

import math

import pytest
import torch

from oodbench.methods.setar.loss import batch_terms, locoop_loss_clip, locoop_loss_logits


def _straightforward(g_feat, l_feat, text, scale, labels, lam, k, batch_size):
    """Python loops over images and patches, float64 sums: the formulas of the spec, nothing shared."""
    n = len(labels)
    t = [[x / math.sqrt(sum(v * v for v in row)) for x in row] for row in text.double().tolist()]

    def logits(vec):
        norm = math.sqrt(sum(x * x for x in vec))
        return [scale * sum(a / norm * b for a, b in zip(vec, trow)) for trow in t]

    per_image = []  # (batch id, loss_id, correct, [entropies of OOD patches], n_patches, n_ood)
    rows = []
    for i in range(n):
        y = int(labels[i])
        gl = logits(g_feat[i].double().tolist())
        m = max(gl)
        lse = m + math.log(sum(math.exp(v - m) for v in gl))
        ent, n_ood = [], 0
        patches = l_feat[i].double().tolist() if l_feat is not None else []
        for p in patches:
            pl = logits(p)
            rank = sorted(range(len(pl)), key=lambda c: -pl[c])[:k]
            if y not in rank:
                n_ood += 1
                mp = max(pl)
                ex = [math.exp(v - mp) for v in pl]
                z = sum(ex)
                probs = [e / z for e in ex]
                ent.append(-sum(q * math.log(q + 1e-5) for q in probs))
        rows.append((i // batch_size, lse - gl[y], gl.index(max(gl)) == y, ent, len(patches), n_ood))
    totals = {"locoop_loss": 0.0, "loss_id": 0.0, "loss_ood": 0.0, "acc": 0.0, "ood_patch_percent": 0.0}
    for b in sorted({r[0] for r in rows}):
        br = [r for r in rows if r[0] == b]
        loss_id = sum(r[1] for r in br) / len(br)
        ents = [e for r in br for e in r[3]]
        loss_ood = -sum(ents) / len(ents) if ents else 0.0
        acc = 100 * sum(r[2] for r in br) / len(br)
        n_p = sum(r[4] for r in br)
        pct = 100 * sum(r[5] for r in br) / n_p if n_p else 0.0
        for key, v in (("locoop_loss", loss_id + lam * loss_ood), ("loss_id", loss_id), ("loss_ood", loss_ood),
                       ("acc", acc), ("ood_patch_percent", pct)):
            totals[key] += v * len(br)
    return {key: v / n for key, v in totals.items()}


def _features(n=21, p=5, d=8, c=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g), torch.randn(n, p, d, generator=g), torch.randn(c, d, generator=g),
            torch.randint(0, c, (n,), generator=g))


@pytest.mark.parametrize("batch_size", [8, 21, 512])
@pytest.mark.parametrize("scale, lam, k", [(100.0, 0.1, 3), (14.3, 0.5, 1), (1.0, 0.25, 6)])
def test_clip_loss_equals_the_straightforward_implementation(batch_size, scale, lam, k):
    img, loc, text, y = _features()
    got = locoop_loss_clip(img, loc, text, scale, y, lam, k, batch_size).to_dict()
    ref = _straightforward(img, loc, text, scale, y, lam, k, batch_size)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=2e-4, rel=1e-5), key


def test_batch_composition_matters_for_the_ood_term_only():
    img, loc, text, y = _features()
    a = locoop_loss_clip(img, loc, text, 100.0, y, 0.1, 3, batch_size=8)
    b = locoop_loss_clip(img, loc, text, 100.0, y, 0.1, 3, batch_size=512)
    assert a.loss_id == pytest.approx(b.loss_id, abs=1e-5) and a.acc == pytest.approx(b.acc)
    assert abs(a.loss_ood - b.loss_ood) > 1e-4  # mean of per-batch means != global mean


def test_scale_is_the_models_not_a_literal_100():
    img, loc, text, y = _features()
    a = locoop_loss_clip(img, loc, text, 100.0, y, 0.1, 3)
    b = locoop_loss_clip(img, loc, text, 50.0, y, 0.1, 3)
    assert a.loss_id != pytest.approx(b.loss_id)


def test_no_ood_patch_gives_zero_ood_term():
    img, loc, text, y = _features()
    r = locoop_loss_clip(img, loc, text, 100.0, y, 0.3, top_k=7)  # K = C: every patch is ID
    assert r.loss_ood == 0.0 and r.ood_patch_percent == 0.0 and r.locoop_loss == pytest.approx(r.loss_id)
    terms = batch_terms(torch.randn(2, 3), torch.randn(2, 4, 3), torch.tensor([0, 1]), 0.3, top_k=10)
    assert float(terms["loss_ood"]) == 0.0


def test_classifier_loss_uses_logits_as_they_are_and_id_only_without_local_logits():
    g = torch.Generator().manual_seed(3)
    logits, local, y = torch.randn(13, 6, generator=g) * 3, torch.randn(13, 4, 6, generator=g) * 3, torch.randint(0, 6, (13,), generator=g)
    got = locoop_loss_logits(logits, local, y, 0.01, 2, batch_size=5).to_dict()
    # per batch, the spec's formulas in float64 on the logits as they are (no normalisation, no scale)
    ref = {k: 0.0 for k in got}
    for s in range(0, 13, 5):
        lg, ll, yy = logits[s:s + 5], local[s:s + 5], y[s:s + 5]
        ce = float(torch.nn.functional.cross_entropy(lg.double(), yy))
        topk = ll.topk(2, dim=-1).indices
        ood = ~(topk == yy[:, None, None]).any(-1)
        p = ll[ood].double().softmax(-1)
        lo = float((p * (p + 1e-5).log()).sum(-1).mean()) if len(p) else 0.0
        for key, v in (("locoop_loss", ce + 0.01 * lo), ("loss_id", ce), ("loss_ood", lo),
                       ("acc", 100 * float((lg.argmax(-1) == yy).double().mean())), ("ood_patch_percent", 100 * float(ood.double().mean()))):
            ref[key] += v * len(yy) / 13
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=1e-5), key
    id_only = locoop_loss_logits(logits, None, y, 0.5, 2, batch_size=5)
    assert id_only.locoop_loss == pytest.approx(ref["loss_id"], abs=1e-5) and id_only.loss_ood == 0.0


def test_prenormalised_inputs_give_the_same_loss():
    img, loc, text, y = _features()
    norm = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    a = locoop_loss_clip(img, loc, text, 100.0, y, 0.1, 3, batch_size=8)
    b = locoop_loss_clip(norm(img), norm(loc), norm(text), 100.0, y, 0.1, 3, batch_size=8, normalized=True)
    assert a.to_dict() == pytest.approx(b.to_dict(), abs=1e-6)


@pytest.mark.parametrize("batch_size", [4, 21, 512])
@pytest.mark.parametrize("cuts", [(), (3, 10, 11), (2, 5, 7, 16, 20)])
def test_per_image_terms_cut_anywhere_give_the_official_batches(batch_size, cuts):
    """The image-divided search: the images cut into shares at arbitrary places (official batches straddling the cuts,
    an empty share), per-image terms per share, reduced in image order = the straightforward loss and the per-batch
    official arithmetic."""
    from oodbench.methods.setar.loss import image_terms, l2_normalize, reduce_image_terms

    img, loc, text, y = _features()
    text_n = l2_normalize(text)
    bounds = [0, *cuts, 21]
    parts = []
    for a, b in zip(bounds, bounds[1:]):
        g = l2_normalize(img[a:b]) @ text_n.t() * 100.0
        lo = l2_normalize(loc[a:b]) @ text_n.t() * 100.0
        parts.append(image_terms(g, lo, y[a:b], 3))
    got = reduce_image_terms(torch.cat(parts), 0.1, batch_size).to_dict()
    ref = _straightforward(img, loc, text, 100.0, y, 0.1, 3, batch_size)
    official = locoop_loss_clip(img, loc, text, 100.0, y, 0.1, 3, batch_size).to_dict()
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=2e-4, rel=1e-5), key
        assert got[key] == pytest.approx(official[key], abs=1e-5, rel=1e-6), key
    no_local = reduce_image_terms(image_terms(l2_normalize(img) @ text_n.t() * 100.0, None, y, 3), 0.1, batch_size)
    assert no_local.to_dict() == pytest.approx(locoop_loss_clip(img, None, text, 100.0, y, 0.1, 3, batch_size).to_dict(),
                                               abs=1e-5)
