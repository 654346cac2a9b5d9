"""NegLabel: mining count and selection, prompts, grouping, the score as a mean of ID softmax masses, caching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oodbench.testing.fixtures import CLASS_NAMES, FakeTextEncoder

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors import neglabel as nl
from oodbench.postprocessors.neglabel_corpus import load_corpus


@pytest.fixture(autouse=True)
def _empty_memory_cache():
    nl._MEMORY_CACHE.clear()
    yield
    nl._MEMORY_CACHE.clear()


def _feats(n=12, seed=0):
    r = np.random.default_rng(seed)
    return Features({"image": r.standard_normal((n, 32)).astype(np.float32)},
                    {"class_names": list(CLASS_NAMES)}, "x")


def _small_corpus(tmp_path, n_noun=40, n_adj=20):
    lines = ["# tiny corpus", *[f"noun\tnoun.test\tnoun{i} word{i % 7}" for i in range(n_noun)],
             *[f"adj\tadj.test\tadj{i}" for i in range(n_adj)]]
    path = tmp_path / "corpus.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_mining_on_shipped_corpus_keeps_15_percent_of_each_part(fake_encoder):
    corpus = load_corpus("wordnet")
    pp = nl.NegLabel().fit(_feats(), fake_encoder)
    n_noun, n_adj = int(len(corpus.nouns) * 0.15), int(len(corpus.adjectives) * 0.15)
    assert (n_noun, n_adj) == (8777, 1842)  # 58,514 nouns and 12,280 adjectives in the shipped corpus
    assert pp.n_neg_nouns_ == n_noun and len(pp.neg_words_) == n_noun + n_adj
    assert pp.neg_text_.shape == (n_noun + n_adj, 32)
    nouns, adjs = set(corpus.nouns), set(corpus.adjectives)
    assert all(w in nouns for w in pp.neg_words_[:n_noun])  # nouns first
    assert all(w in adjs for w in pp.neg_words_[n_noun:])


def test_prompts_of_id_classes_and_candidates(tmp_path):
    enc = FakeTextEncoder(cache_dir=tmp_path)
    nl.NegLabel(corpus=_small_corpus(tmp_path)).fit(_feats(), enc)
    seen = enc.prompts_seen
    assert set(seen[: len(CLASS_NAMES)]) == {f"the nice {c}" for c in CLASS_NAMES}  # not the benchmark prompt
    assert "the nice noun3 word3" in seen and "This is a adj5 photo" in seen


def test_selection_matches_independent_reference(tmp_path):
    enc = FakeTextEncoder(cache_dir=tmp_path)
    path = _small_corpus(tmp_path)
    pp = nl.NegLabel(corpus=path).fit(_feats(), enc)
    corpus = load_corpus(path)

    def unit(x):
        t = torch.tensor(x, dtype=torch.float32)
        return t / t.norm(dim=-1, keepdim=True)

    pos = unit(enc.encode_text([f"the nice {c}" for c in CLASS_NAMES]))
    noun = unit(enc.encode_text([f"the nice {w}" for w in corpus.nouns]))
    adj = unit(enc.encode_text([f"This is a {w} photo" for w in corpus.adjectives]))
    sim_noun = torch.quantile(noun @ pos.T, q=0.95, dim=-1)
    sim_adj = torch.quantile(adj @ pos.T, q=0.95, dim=-1)
    sel_noun = [corpus.nouns[i] for i in torch.argsort(sim_noun)[: int(40 * 0.15)]]
    sel_adj = [corpus.adjectives[i] for i in torch.argsort(sim_adj)[: int(20 * 0.15)]]
    assert pp.n_neg_nouns_ == 6 and len(pp.neg_words_) == 9
    assert set(pp.neg_words_[:6]) == set(sel_noun) and set(pp.neg_words_[6:]) == set(sel_adj)
    # the kept ones are the least similar to the ID classes
    assert float(sim_noun.sort().values[5]) < float(sim_noun.sort().values[6])
    np.testing.assert_allclose(pp.pos_text_, pos.numpy(), atol=1e-6)


def test_grouping_is_deterministic_and_drops_the_tail():
    g1 = nl.group_permutation(10499, 100, seed=0)
    g2 = nl.group_permutation(10499, 100, seed=0)
    np.testing.assert_array_equal(g1, g2)
    assert g1.shape == (100, 104)
    assert sorted(g1.ravel().tolist()) == list(range(10400))  # the last 10499 mod 100 = 99 are dropped
    with torch.random.fork_rng():  # the reference: torch.manual_seed(0); torch.randperm(...)
        torch.manual_seed(0)
        ref = torch.randperm(10400).numpy().reshape(100, -1)
    np.testing.assert_array_equal(g1, ref)
    state = torch.random.get_rng_state()
    nl.group_permutation(500, 10)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is left alone


def _loop_score(image, pos, neg, ngroup, t, seed=0):
    """Reference: per sample and group, softmax over [pos, neg_g]/t of 100·cos, summed over ID, averaged."""
    m = len(neg) - len(neg) % ngroup
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        perm = torch.randperm(m)
    negs = torch.tensor(neg[:m], dtype=torch.float64)[perm].reshape(ngroup, -1, neg.shape[1])
    p = torch.tensor(pos, dtype=torch.float64)
    out = []
    for x in image:
        x = torch.tensor(x, dtype=torch.float64)
        x = x / x.norm()
        masses = []
        for g in range(ngroup):
            logits = torch.cat([100 * p @ x, 100 * negs[g] @ x]) / t
            masses.append(float(torch.softmax(logits, 0)[: len(p)].sum()))
        out.append(sum(masses) / ngroup)
    return np.array(out)


@pytest.mark.parametrize("ngroup,t", [(100, 1.0), (7, 1.0), (1, 2.0)])
def test_score_is_mean_over_groups_of_id_softmax_mass(tmp_path, ngroup, t):
    r = np.random.default_rng(1)
    pos = r.standard_normal((5, 16))
    pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    neg = r.standard_normal((1003, 16))
    neg /= np.linalg.norm(neg, axis=1, keepdims=True)
    image = (0.05 * r.standard_normal((9, 16))).astype(np.float32)  # small cosines: no saturated masses
    image[:3] += pos[:3].astype(np.float32)  # and a few ID-like ones
    got = nl.neglabel_score(image, pos.astype(np.float32), neg.astype(np.float32), ngroup, t)
    expected = _loop_score(image, pos.astype(np.float32), neg.astype(np.float32), ngroup, t)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.all(got[:3] > got[3:].max())


def test_class_scores_with_fitted_state(tmp_path):
    enc = FakeTextEncoder(cache_dir=tmp_path)
    pp = nl.NegLabel(corpus=_small_corpus(tmp_path, 400, 100), ngroup=5).fit(_feats(), enc)
    f = _feats(seed=3)
    expected = _loop_score(f["image"], pp.pos_text_, pp.neg_text_, 5, 1.0)
    np.testing.assert_allclose(pp.score(f), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(UserError, match="exceeds"):
        pp.set_params(ngroup=10_000).score(f)


def test_mining_is_cached_in_memory_and_on_disk(tmp_path):
    path = _small_corpus(tmp_path)
    enc = FakeTextEncoder(cache_dir=tmp_path / "c")
    a = nl.NegLabel(corpus=path).fit(_feats(), enc)
    assert enc.calls > 0
    files = list((tmp_path / "c").glob("*.npz"))
    assert len(files) == 1 and files[0].stem == a.cache_key_

    enc2 = FakeTextEncoder(cache_dir=tmp_path / "c")  # same weights (cache_key), memory hit
    b = nl.NegLabel(corpus=path).fit(_feats(), enc2)
    assert enc2.calls == 0 and b.neg_words_ == a.neg_words_
    nl._MEMORY_CACHE.clear()  # disk hit
    c = nl.NegLabel(corpus=path).fit(_feats(), enc2)
    assert enc2.calls == 0
    np.testing.assert_array_equal(c.neg_text_, a.neg_text_)
    assert c.n_neg_nouns_ == a.n_neg_nouns_

    # another ID class list, another text tower, or other mining settings -> mined again
    other_classes = Features({"image": np.zeros((1, 32), np.float32)}, {"class_names": ["cat", "dog"]})
    nl.NegLabel(corpus=path).fit(other_classes, enc2)
    assert enc2.calls > 0
    enc3 = FakeTextEncoder(cache_key="another-text-tower", cache_dir=tmp_path / "c")
    nl.NegLabel(corpus=path).fit(_feats(), enc3)
    assert enc3.calls > 0
    calls = enc3.calls
    nl.NegLabel(corpus=path, neg_fraction=0.5).fit(_feats(), enc3)
    assert enc3.calls > calls
    assert len(list((tmp_path / "c").glob("*.npz"))) == 4


def test_default_cache_dir_is_used_without_encoder_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_CACHE_DIR", str(tmp_path / "home"))
    enc = FakeTextEncoder()
    del enc.cache_dir  # an encoder without a cache folder of its own
    nl.NegLabel(corpus=_small_corpus(tmp_path)).fit(_feats(), enc)
    assert len(list((tmp_path / "home" / "neglabel").glob("*.npz"))) == 1


def test_corrupt_cache_file_is_mined_again(tmp_path):
    path = _small_corpus(tmp_path)
    enc = FakeTextEncoder(cache_dir=tmp_path)
    pp = nl.NegLabel(corpus=path).fit(_feats(), enc)
    (tmp_path / f"{pp.cache_key_}.npz").write_bytes(b"garbage")
    nl._MEMORY_CACHE.clear()
    enc2 = FakeTextEncoder(cache_dir=tmp_path)
    again = nl.NegLabel(corpus=path).fit(_feats(), enc2)
    assert enc2.calls > 0 and again.neg_words_ == pp.neg_words_


def test_user_errors():
    with pytest.raises(UserError, match="text encoder"):
        nl.NegLabel().fit(_feats(), None)
    with pytest.raises(UserError, match="must contain one"):
        nl.NegLabel(noun_prompt="no slot").fit(_feats(), FakeTextEncoder())
    with pytest.raises(UserError, match="class names"):
        nl.NegLabel().fit(Features({"image": np.zeros((1, 4), np.float32)}), FakeTextEncoder())
    with pytest.raises(RuntimeError, match="not fitted"):
        nl.NegLabel().score(_feats())


def test_score_saturates_to_one_for_class_aligned_images(fake_encoder):
    pp = nl.NegLabel().fit(_feats(), fake_encoder)
    aligned = Features({"image": pp.pos_text_.copy()}, {})
    assert np.all(pp.score(aligned) > 0.99)
    assert math.isclose(float(pp.score(aligned).max()), 1.0, abs_tol=1e-6)


def test_encoding_in_length_order_returns_input_order(monkeypatch):
    monkeypatch.setattr(nl, "ENCODE_BATCH", 3)
    enc = FakeTextEncoder()
    prompts = ["a much longer prompt here", "b", "cc dd", "e", "the nice x", "ff gg hh", "i"]
    got = nl.encode_normalized(enc, prompts)
    ref = enc.encode_text(prompts)
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-6)
    assert enc.calls == 1 + 3  # 7 prompts in batches of 3 (plus the reference call)
