"""AdaNeg parity: a plain re-implementation of the reference's memory update and score (OpenOOD-VLM
``TTAPromptPostprocessor_noadagap.postprocess``, written here loop by loop, its entropy in torch half precision as
the reference's fp16 CLIP gives it, or exact) on identical features, stream state included: the same order gives
the same scores (<= 1e-6); another order changes them, except for the part that does not read the memory. The
reference's negative-label selection and its evaluator's stream order, each re-implemented plainly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors.adaneg import AdaNeg
from oodbench.postprocessors.neglabel import NegLabel
from oodbench.testing.fixtures import FakeTextEncoder

C, M, D, SCALE = 4, 23, 16, 30.0


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _texts(seed=0):
    rng = np.random.default_rng(seed)
    return _unit(rng.standard_normal((C, D))).astype(np.float32), _unit(rng.standard_normal((M, D))).astype(np.float32)


def _features(pos, neg, n_id=40, n_ood=40, seed=1):
    """ID images near the class texts, OOD images near the negative texts (so both memory gates open)."""
    rng = np.random.default_rng(seed)
    ids = pos[rng.integers(0, C, n_id)] + 0.35 * rng.standard_normal((n_id, D))
    oods = neg[rng.integers(0, M, n_ood)] + 0.35 * rng.standard_normal((n_ood, D))
    image = (3.0 * np.concatenate([ids, oods])).astype(np.float32)  # not unit norm: the score normalises
    return Features({"image": image}, {"logit_scale": np.float32(SCALE), "class_names": [f"c{i}" for i in range(C)]},
                    "stream")


def _fitted(pos, neg, **params):
    post = AdaNeg(**params)
    post.pos_text_, post.neg_text_ = pos, neg
    return post


# ------------------------------------------------------------------------------ the reference, written plainly
def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _ref_group_score(logits, n_cls, group_num, random_permute):
    """NegLabel grouping of the reference: drop the tail, torch.manual_seed(0) randperm, per-group softmax."""
    pos, neg = logits[:, :n_cls], logits[:, n_cls:]
    drop = neg.shape[1] % group_num
    if drop > 0:
        neg = neg[:, :-drop]
    if random_permute:
        torch.manual_seed(0)
        idx = torch.randperm(neg.shape[1]).numpy()
        neg = neg[:, idx]
    neg = neg.reshape(len(logits), group_num, -1)
    out = np.zeros(len(logits))
    for b in range(len(logits)):
        s = [_softmax(np.concatenate([pos[b], neg[b, g]]))[:n_cls].sum() for g in range(group_num)]
        out[b] = np.mean(s)
    return out


class RefAdaNeg:
    """The reference's state and ``postprocess`` for one stream (reset at construction)."""

    def __init__(self, text, memory_size=10, thres=0.5, gap=0.5, lambda_val=0.1, beta=5, samada=False,
                 group_num=5, random_permute=True, in_score="combine", half=True):
        self.text, self.n_cls = np.asarray(text, np.float64), C
        self.memory_size, self.thres, self.gap, self.lam = memory_size, thres, gap, lambda_val
        self.beta, self.samada, self.group_num, self.rp, self.in_score = beta, samada, group_num, random_permute, in_score
        k = len(text)
        self.feat_memory = np.concatenate([self.text[:, None, :], np.zeros((k, memory_size, D))], axis=1)
        self.indice_memory = np.ones(k)
        self.entropy_memory = np.zeros((k, memory_size + 1))
        self.half, self.refused_nan = half, 0

    def _store(self, cate, feat, logits):
        if self.half:  # the reference's probabilities are a half tensor (fp16 CLIP)
            p = torch.softmax(torch.tensor(logits, dtype=torch.float32), 0).half()
            ent = float(-(p * torch.log(p + 1e-8)).sum())
        else:
            p = _softmax(logits)
            ent = -(p * np.log(p + 1e-8)).sum()
        if self.indice_memory[cate] == self.memory_size:
            if (ent < self.entropy_memory[cate]).sum() == 0:
                self.refused_nan += int(np.isnan(ent))
                return
            j = int(torch.sort(torch.tensor(self.entropy_memory[cate]), stable=True)[1][-1])
            self.feat_memory[cate][j] = feat
            self.entropy_memory[cate][j] = ent
        else:
            j = int(self.indice_memory[cate])
            self.feat_memory[cate][j] = feat
            self.entropy_memory[cate][j] = ent
            self.indice_memory[cate] += 1

    def postprocess(self, image, scale):
        x = np.asarray(image, np.float64)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        out_v = scale * x @ self.text.T
        conf_v = _ref_group_score(out_v, self.n_cls, self.group_num, self.rp)
        for i in range(len(x)):
            if conf_v[i] > self.thres + self.gap * (1 - self.thres):
                self._store(int(np.argmax(out_v[i, :C])), x[i], out_v[i, :C])
        for i in range(len(x)):
            if conf_v[i] < self.thres - self.gap * self.thres:
                self._store(C + int(np.argmax(out_v[i, C:])), x[i], out_v[i, C:])
        if self.samada:
            out = np.zeros((len(x), len(self.text)))
            for b in range(len(x)):
                for k in range(len(self.text)):
                    w = np.exp(-self.beta * (1 - self.feat_memory[k] @ x[b]))
                    p = (w[:, None] * self.feat_memory[k]).sum(0)
                    out[b, k] = scale * x[b] @ (p / np.linalg.norm(p))
        else:
            p = self.feat_memory.mean(1)
            p = p / np.linalg.norm(p, axis=1, keepdims=True)
            out = scale * x @ p.T
        conf = _ref_group_score(out, self.n_cls, self.group_num, self.rp)
        return {"combine": conf + conf_v * self.lam, "adaonly": conf, "vanillaonly": conf_v,
                "multiply": conf * conf_v}[self.in_score]


def _ref_stream(feats, order, batch, text, **kw):
    ref = RefAdaNeg(text, **kw)
    out = np.empty(len(order))
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        out[idx] = ref.postprocess(feats["image"][idx], float(feats["logit_scale"]))
    return out, ref


def _ours(post, feats, order):
    return_ = np.empty(len(order))
    return_[order] = post.score(feats.subset(order))
    return return_


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("params", [
    {},
    {"memory_len": 3},
    {"memory_len": 3, "samada": True, "beta": 5},
    {"in_score": "multiply", "random_permute": False, "ngroup": 3},
    {"in_score": "adaonly", "thres": 0.6, "gap": 0.3, "lambda_val": 0.5},
    {"entropy_precision": "fp64"},
    {"entropy_precision": "fp64", "memory_len": 3},
])
def test_same_order_equals_the_reference_stream_state_included(params):
    pos, neg = _texts()
    feats = _features(pos, neg)
    post = _fitted(pos, neg, batch_size=8, **params)
    order = torch.randperm(len(feats), generator=torch.Generator().manual_seed(5)).numpy()
    ours = _ours(post, feats, order)
    kw = {"memory_size": params.get("memory_len", 10), "thres": params.get("thres", 0.5),
          "gap": params.get("gap", 0.5), "lambda_val": params.get("lambda_val", 0.1), "beta": params.get("beta", 5),
          "samada": params.get("samada", False), "group_num": params.get("ngroup", 5),
          "random_permute": params.get("random_permute", True), "in_score": params.get("in_score", "combine"),
          "half": params.get("entropy_precision", "fp16") == "fp16"}
    ref, state = _ref_stream(feats, order, 8, np.concatenate([pos, neg]), **kw)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    # the stream really adapted: images entered ID and negative rows, and (memory 3) rows filled up
    filled = state.indice_memory - 1
    assert filled[:C].sum() > 0 and filled[C:].sum() > 0
    if kw["memory_size"] == 3:
        assert (state.indice_memory == 3).any()
    # and a stream that adapts scores differently from one whose memory never opens
    static = _fitted(pos, neg, batch_size=8, **{**params, "gap": 1.0})
    assert np.max(np.abs(_ours(static, feats, order) - ours)) > 1e-3


def test_another_order_gives_the_documented_difference():
    """Another order changes which test features are in memory when an image is scored: the scores change (and
    still equal the reference fed that order); the memory-free part (the vanilla NegLabel mass) does not."""
    pos, neg = _texts()
    feats = _features(pos, neg)
    text = np.concatenate([pos, neg])
    orders = [torch.randperm(len(feats), generator=torch.Generator().manual_seed(s)).numpy() for s in (0, 1)]
    post = _fitted(pos, neg, batch_size=8, memory_len=3)
    a, b = (_ours(post, feats, o) for o in orders)
    assert np.max(np.abs(a - b)) > 1e-3
    np.testing.assert_allclose(b, _ref_stream(feats, orders[1], 8, text, memory_size=3)[0], atol=1e-6)
    vanilla = _fitted(pos, neg, batch_size=8, memory_len=3, in_score="vanillaonly")
    np.testing.assert_allclose(*(_ours(vanilla, feats, o) for o in orders), rtol=0, atol=1e-12)
    # a memory that never opens (gap = 1) keeps only the text: conf = conf_van, score = (1 + lambda) conf_van,
    # whatever the order
    closed = _fitted(pos, neg, batch_size=8, gap=1.0)
    van = _ours(vanilla, feats, orders[0])
    for o in orders:
        np.testing.assert_allclose(_ours(closed, feats, o), 1.1 * van, rtol=1e-6)  # text renormalised


def test_batch_size_is_part_of_the_stream():
    pos, neg = _texts()
    feats = _features(pos, neg)
    order = np.arange(len(feats))
    a = _ours(_fitted(pos, neg, batch_size=8, memory_len=3), feats, order)
    b = _ours(_fitted(pos, neg, batch_size=16, memory_len=3), feats, order)
    np.testing.assert_allclose(b, _ref_stream(feats, order, 16, np.concatenate([pos, neg]), memory_size=3)[0],
                               atol=1e-6)
    assert np.max(np.abs(a - b)) > 1e-4


def test_scoring_leaves_no_state_behind():
    pos, neg = _texts()
    feats = _features(pos, neg)
    post = _fitted(pos, neg, batch_size=8)
    first = post.score(feats)
    post.score(feats.subset(np.arange(10)))
    np.testing.assert_array_equal(post.score(feats), first)


def test_neglabel_source_is_neglabel_mining(tmp_path):
    """neg_source=neglabel: the ID prompts and negatives are NegLabel's (same mining, same cache)."""
    lines = ["# tiny", *[f"noun\tnoun.test\tnoun{i} word{i % 7}" for i in range(40)],
             *[f"adj\tadj.all\tadj{i}" for i in range(20)]]
    (tmp_path / "c.tsv").write_text("\n".join(lines) + "\n")
    fake = FakeTextEncoder(cache_dir=tmp_path / "cache")
    fit = Features({"image": np.zeros((1, 32), np.float32)}, {"class_names": ["cat", "dog"], "logit_scale": 10.0})
    ada = AdaNeg(corpus=str(tmp_path / "c.tsv"), neg_source="neglabel").fit(fit, fake)
    neg = NegLabel(corpus=str(tmp_path / "c.tsv")).fit(fit, fake)
    np.testing.assert_array_equal(ada.pos_text_, neg.pos_text_)
    np.testing.assert_array_equal(ada.neg_text_, neg.neg_text_)
    assert ada.cache_key_ == neg.cache_key_


@pytest.mark.parametrize("bad", [{"in_score": "sum"}, {"memory_len": 0}, {"ngroup": 99}, {"thres": 1.5},
                                 {"batch_size": 0}, {"entropy_precision": "fp32"}])
def test_bad_hyperparameters_are_one_line_errors(bad):
    pos, neg = _texts()
    with pytest.raises(UserError, match="adaneg"):
        _fitted(pos, neg, **bad).score(_features(pos, neg))


def test_fp16_entropy_reproduces_the_references_nan_and_no_replacement():
    """In half precision an underflowing probability makes the entropy NaN, and a full row then keeps its images:
    the default (fp16) follows the reference's fp16 run, fp64 the exact formula; they differ on this stream."""
    from oodbench.postprocessors.adaneg import softmax_entropy

    z = np.array([30.0, 0.0, -5.0])  # p ~ 1e-13: 0 in fp16
    assert np.isnan(softmax_entropy(z, "fp16")) and np.isfinite(softmax_entropy(z, "fp64"))
    p = torch.softmax(torch.tensor([1.0, 0.5, 0.2]), 0).half()  # nothing underflows: fp16-rounded entropy
    assert softmax_entropy(np.array([1.0, 0.5, 0.2]), "fp16") == float(-(p * torch.log(p + 1e-8)).sum())
    pos, neg = _texts()
    feats = _features(pos, neg)
    order = torch.randperm(len(feats), generator=torch.Generator().manual_seed(5)).numpy()
    text = np.concatenate([pos, neg])
    half = _ours(_fitted(pos, neg, batch_size=8, memory_len=3), feats, order)
    exact = _ours(_fitted(pos, neg, batch_size=8, memory_len=3, entropy_precision="fp64"), feats, order)
    ref_half, state = _ref_stream(feats, order, 8, text, memory_size=3)
    np.testing.assert_allclose(half, ref_half, atol=1e-6, rtol=0)
    np.testing.assert_allclose(exact, _ref_stream(feats, order, 8, text, memory_size=3, half=False)[0], atol=1e-6)
    assert state.refused_nan > 0 and np.isnan(state.entropy_memory).any()
    assert np.max(np.abs(half - exact)) > 1e-2


# ------------------------------------------------------------------- the reference's negative-label selection
CLASSES6 = ["cat", "dog", "red fox", "blue whale", "oak", "old car"]


def _word_files(tmp_path):
    """A folder in the reference's layout: adjective and noun files, a class name, a noun-adjective, repeats."""
    rng = np.random.default_rng(3)
    vocab = [f"v{i}" for i in range(25)] + ["cat", "fox", "whale", "car", "old"]
    folder = tmp_path / "txtfiles"
    folder.mkdir()
    nouns = [f"{' '.join(rng.choice(vocab, 1 + i % 2))} n{i}" for i in range(60)]
    adjs = [f"a{i} {rng.choice(vocab)}" for i in range(24)]
    (folder / "noun.artifact.txt").write_text("\n".join(nouns[:30] + ["cat", "shared"]) + "\n")
    (folder / "noun.plant.txt").write_text("\n".join(nouns[30:] + [nouns[0]]) + "\n")
    (folder / "adj.all.txt").write_text("\n".join(adjs[:12] + ["shared", "dog"]) + "\n")
    (folder / "adj.ppl.txt").write_text("\n".join(adjs[12:] + [adjs[0]]) + "\n")
    (folder / "README").write_text("not a word file\n")
    return folder


def _ref_official_selection(encoder, folder, classnames, total):
    """get_selected_ood_text_list + generate_cossim_idname_wordnet_dedup + get_text_features_neg, plainly."""
    import os

    def enc(prompts):
        x = torch.tensor(np.asarray(encoder.encode_text(prompts)), dtype=torch.float32)
        return x / x.norm(dim=-1, keepdim=True)

    adj_list, noun_list = [], []
    for name in os.listdir(folder):
        text = open(os.path.join(folder, name)).read()
        if name[:3] == "adj" and name[-3:] == "txt":
            adj_list += text.split("\n")[:-1]
        elif name[:4] == "noun" and name[-3:] == "txt":
            noun_list += text.split("\n")[:-1]
    adj_list, noun_list = list(set(adj_list)), list(set(noun_list))
    adj_list = [w for w in adj_list if w not in classnames]
    noun_list = [w for w in noun_list if w not in classnames]
    adj_list = [w for w in adj_list if w not in noun_list]
    pos = enc(["The nice " + c + "." for c in classnames])
    noun_emb = enc(["The nice " + w + "." for w in noun_list])
    adj_emb = enc(["This is a " + w + " photo." for w in adj_list])
    adj_num = int(total * (len(adj_list) / (len(adj_list) + len(noun_list))))
    noun_num = total - adj_num
    idx = int(len(classnames) * 0.95)
    sel_adj = (adj_emb @ pos.T).sort(1)[0][:, idx].sort(0)[1][:adj_num]
    sel_noun = (noun_emb @ pos.T).sort(1)[0][:, idx].sort(0)[1][:noun_num]
    words = [adj_list[i] for i in sel_adj] + [noun_list[i] for i in sel_noun]
    return pos.numpy(), torch.cat([adj_emb[sel_adj], noun_emb[sel_noun]]).numpy(), words, adj_num


@pytest.mark.parametrize("total", [10, 25, 80])
def test_official_selection_equals_the_reference(tmp_path, total):
    folder = _word_files(tmp_path)
    fit = Features({"image": np.zeros((1, 32), np.float32)}, {"class_names": CLASSES6, "logit_scale": 100.0})
    ada = AdaNeg(corpus=str(folder), neg_count=total).fit(fit, FakeTextEncoder(cache_dir=tmp_path / "cache"))
    pos, neg, words, adj_num = _ref_official_selection(FakeTextEncoder(), folder, CLASSES6, total)
    assert list(ada.neg_words_) == words and len(words) == total
    assert ada.n_neg_nouns_ == total - adj_num and 0 < adj_num < total
    assert "cat" not in words and "dog" not in words  # exact class names removed
    assert "shared" not in words[:adj_num]  # a noun-adjective counts as a noun only
    np.testing.assert_allclose(ada.pos_text_, pos, atol=1e-6)
    np.testing.assert_allclose(ada.neg_text_, neg, atol=1e-6)
    neglabel = AdaNeg(corpus=str(folder), neg_source="neglabel").fit(fit, FakeTextEncoder(cache_dir=tmp_path / "c2"))
    assert list(neglabel.neg_words_) != words


def test_official_similarity_is_an_order_statistic_and_the_split_follows_part_sizes():
    from oodbench.postprocessors.adaneg import official_split, order_statistic_similarity

    cos = np.array([[0.1, 0.5, 0.3, 0.2, 0.4], [0.9, 0.0, 0.8, 0.7, 0.6]], np.float32)
    pos = np.eye(5, dtype=np.float32)
    # C = 5: index int(4.75) = 4 of the ascending cosines (the maximum), never an interpolation
    np.testing.assert_array_equal(order_statistic_similarity(cos, pos), cos[[0, 1], [1, 0]])
    np.testing.assert_array_equal(order_statistic_similarity(cos, pos, 0.5), cos[[0, 1], [2, 3]])
    # the reference's word files: 1,646 adjectives and 8,354 nouns of 10,000
    assert official_split(16_460, 83_540) == (1646, 8354)
    assert official_split(12_280, 58_514) == (int(10_000 * 12_280 / 70_794), 10_000 - int(10_000 * 12_280 / 70_794))


# --------------------------------------------------------------------- the release evaluator's stream order
def _evaluator_orders(n_id, n_oods, keep, batch):
    """OODEvaluatorClipTTA._eval_ood, plainly: one unseeded shuffled DataLoader over ConcatDataset([ID, set]) per
    set; every batch's postprocess calls torch.manual_seed(0); torch.randperm(keep) (twice: vanilla and adapted)."""
    from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

    orders = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # whatever the model construction left
        for n_ood in n_oods:
            ds = ConcatDataset([TensorDataset(torch.arange(n_id)), TensorDataset(torch.arange(n_id, n_id + n_ood))])
            order = []
            for (idx,) in DataLoader(ds, batch_size=batch, shuffle=True):
                order += idx.tolist()
                for _ in range(2):
                    torch.manual_seed(0)
                    torch.randperm(keep)
            orders.append(order)
    return orders


def test_official_stream_order_is_the_release_evaluators():
    from oodbench.postprocessors.adaneg import official_stream_order
    from oodbench.stream import evaluate_streams, run_stream

    n_id, n_oods, keep = 40, (30, 25, 40), 20
    orders = _evaluator_orders(n_id, n_oods, keep, 8)
    for n_ood, order in zip(n_oods[1:], orders[1:]):  # every set after the first
        assert official_stream_order(n_id + n_ood, keep).tolist() == order
    assert official_stream_order(n_id + n_oods[0], keep).tolist() != orders[0]  # the first is not reproduced
    torch.manual_seed(0)  # not the same as the seeded randperm of the manual_seed(0) state
    assert torch.randperm(n_id + n_oods[1]).tolist() != orders[1]
    # through the benchmark's protocol: AdaNeg with stream_order=official feeds exactly that order, once
    pos, neg = _texts()  # M = 23, G = 5: keep = 20
    feats = _features(pos, neg)
    post = _fitted(pos, neg, batch_size=8, memory_len=3, stream_order="official")
    ids, ood = feats.subset(np.arange(40)), feats.subset(np.arange(40, 80))
    res = evaluate_streams(post, ids, {"set": ood}, "adaneg")
    want = run_stream(post, feats, official_stream_order(80, keep), 8)
    np.testing.assert_array_equal(res.ood_scores["set"], want[40:])
    assert res.record["seeds"] == [0] and "official" in res.record["order"]
    with pytest.raises(UserError, match="random_permute"):
        _fitted(pos, neg, stream_order="official", random_permute=False).stream_permutation(80, 0)
