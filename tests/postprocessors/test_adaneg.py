"""AdaNeg parity: a plain re-implementation of the reference's memory update and score (OpenOOD-VLM
``TTAPromptPostprocessor_noadagap.postprocess``, written here loop by loop) on identical features, stream state
included: the same order gives the same scores (<= 1e-6); another order changes them, except for the part that
does not read the memory."""

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
                 group_num=5, random_permute=True, in_score="combine"):
        self.text, self.n_cls = np.asarray(text, np.float64), C
        self.memory_size, self.thres, self.gap, self.lam = memory_size, thres, gap, lambda_val
        self.beta, self.samada, self.group_num, self.rp, self.in_score = beta, samada, group_num, random_permute, in_score
        k = len(text)
        self.feat_memory = np.concatenate([self.text[:, None, :], np.zeros((k, memory_size, D))], axis=1)
        self.indice_memory = np.ones(k)
        self.entropy_memory = np.zeros((k, memory_size + 1))

    def _store(self, cate, feat, prob):
        ent = -(prob * np.log(prob + 1e-8)).sum()
        if self.indice_memory[cate] == self.memory_size:
            if (ent < self.entropy_memory[cate]).sum() == 0:
                return
            j = np.argsort(self.entropy_memory[cate], kind="stable")[-1]
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
                self._store(int(np.argmax(out_v[i, :C])), x[i], _softmax(out_v[i, :C]))
        for i in range(len(x)):
            if conf_v[i] < self.thres - self.gap * self.thres:
                self._store(C + int(np.argmax(out_v[i, C:])), x[i], _softmax(out_v[i, C:]))
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
          "random_permute": params.get("random_permute", True), "in_score": params.get("in_score", "combine")}
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


def test_fit_is_neglabel_mining(tmp_path):
    """The ID prompts and negatives are NegLabel's (same mining, same cache)."""
    lines = ["# tiny", *[f"noun\tnoun.test\tnoun{i} word{i % 7}" for i in range(40)],
             *[f"adj\tadj.all\tadj{i}" for i in range(20)]]
    (tmp_path / "c.tsv").write_text("\n".join(lines) + "\n")
    fake = FakeTextEncoder(cache_dir=tmp_path / "cache")
    fit = Features({"image": np.zeros((1, 32), np.float32)}, {"class_names": ["cat", "dog"], "logit_scale": 10.0})
    ada = AdaNeg(corpus=str(tmp_path / "c.tsv")).fit(fit, fake)
    neg = NegLabel(corpus=str(tmp_path / "c.tsv")).fit(fit, fake)
    np.testing.assert_array_equal(ada.pos_text_, neg.pos_text_)
    np.testing.assert_array_equal(ada.neg_text_, neg.neg_text_)
    assert ada.cache_key_ == neg.cache_key_


@pytest.mark.parametrize("bad", [{"in_score": "sum"}, {"memory_len": 0}, {"ngroup": 99}, {"thres": 1.5},
                                 {"batch_size": 0}])
def test_bad_hyperparameters_are_one_line_errors(bad):
    pos, neg = _texts()
    with pytest.raises(UserError, match="adaneg"):
        _fitted(pos, neg, **bad).score(_features(pos, neg))
