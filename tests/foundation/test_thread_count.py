"""Every number oodbench computes is the same, bit for bit, for any CPU thread count (oodbench.threads).

The same work runs under 1, 2 and 4 threads — torch's intra-op threads (``torch.set_num_threads``: ATen, MKL,
oneDNN) and, through threadpoolctl, numpy's BLAS and faiss's OpenMP — and the results are compared byte for byte:
the SVD of a weight, the extraction of digits features (vanilla and SeTAR-modified), every registered score on
them, a SeTAR search's plan and every candidate's losses, and short fine-tuning runs (LoRA, SeTAR+FT).

Before oodbench.threads the SVD (MKL's threaded LAPACK) and the training backward (weight-gradient matmuls whose
inner dimension is batch x tokens, divided over threads by MKL) gave other last bits with 2 or 4 threads than with
one, which moved the digits Table 1 (tests/results/test_digits_edition.py runs it at 2 threads).

Inputs are kept small (digits_clip; 128 test images, the 120 val images), so each test takes seconds.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

COUNTS = (1, 2, 4)


@contextlib.contextmanager
def cpu_threads(n: int):
    """torch, MKL, oneDNN, numpy's BLAS and any OpenMP runtime (faiss) at ``n`` threads; restored after."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=n):
            torch.set_num_threads(n)
            yield
    finally:
        torch.set_num_threads(before)


def under_each_count(fn):
    """``{n: fn()}`` for every thread count of :data:`COUNTS`."""
    out = {}
    for n in COUNTS:
        with cpu_threads(n):
            out[n] = fn()
    return out


def _bytes(value) -> tuple:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    return arr.dtype.str, arr.shape, arr.tobytes()


def assert_same_bits(results: dict, what: str) -> None:
    """Every thread count's ``{name: array}`` equals the one-thread result byte for byte."""
    ref = results[COUNTS[0]]
    assert ref, f"{what}: nothing was compared"
    for n in COUNTS[1:]:
        assert sorted(results[n]) == sorted(ref), f"{what}: {n} threads produced other entries"
        for name in ref:
            a, b = ref[name], results[n][name]
            if _bytes(a) != _bytes(b):
                a, b = np.asarray(torch.as_tensor(a).double()), np.asarray(torch.as_tensor(b).double())
                diff = float(np.abs(a - b).max()) if a.shape == b.shape else "shape"
                pytest.fail(f"{what}: {name} differs between 1 and {n} threads (max |diff| {diff})")


# ------------------------------------------------------------------------------------------------ inputs
@pytest.fixture(scope="module")
def digits():
    """digits_clip, the digits benchmark, 64 ID-test + 64 near-OOD images and the 120 preprocessed val images."""
    from oodbench.backbones import create_backbone
    from oodbench.data.sources import ArraySource
    from oodbench.datasets.digits import CLASS_NAMES, PROMPT, resolve_digits

    resolved = resolve_digits()
    bb = create_backbone("digits_clip")
    by_name = {s.name: s.source for s in resolved.splits()}
    sources = {}
    for name in ("digits 0-5 (test)", "digits 6-9"):
        src = by_name[name]
        sources[name] = ArraySource(name, src.images[:64], src.labels[:64])
    val = resolved.id_val
    pre = bb.preprocess()
    images = torch.stack([pre(val.load(i)) for i in range(len(val))])
    labels = torch.from_numpy(np.asarray(val.labels).copy())
    return {"bb": bb, "sources": sources, "val": val, "val_images": images, "val_labels": labels,
            "classes": list(CLASS_NAMES), "prompt": PROMPT}


def _plan():
    """A fixed SeTAR plan cutting W_up in both towers (no search)."""
    from oodbench.methods.setar.plan import Plan, PlanEntry

    return Plan([PlanEntry("vision", "W_up", 3, 0.3), PlanEntry("vision", "W_up", 1, 0.15),
                 PlanEntry("text", "W_up", 2, 0.25), PlanEntry("text", "W_up", 0, 0.1)], "minor", 0, {})


def _features(d, plan=None) -> dict:
    """Image, local and text features of the 128 images (in batches of 64), optionally with ``plan``
    applied by a fresh modifier (so its SVDs are computed under the current thread count)."""
    from oodbench.features.extract import extract_features
    from oodbench.methods.setar.modifier import SetarModifier

    bb = d["bb"]
    mod = SetarModifier().apply(bb, plan) if plan is not None else None
    try:
        out = {}
        for name, src in d["sources"].items():
            f = extract_features(bb, src, ["image", "local", "text", "logit_scale"], class_names=d["classes"],
                                 prompt=d["prompt"], cache=None, batch_size=64, num_workers=0, device="cpu")
            out |= {f"{name}/{k}": np.asarray(f[k]) for k in ("image", "local", "text")}
        return out
    finally:
        if mod is not None:
            mod.restore()


# ------------------------------------------------------------------------------------------------- tests
def test_svd_of_every_searched_weight_is_the_same_for_any_thread_count(digits):
    """Fails without oodbench.threads: MKL's threaded SVD of the 128 x 512 W_down weights differs with 2 threads."""
    from oodbench.methods.setar.lowrank import SVDFactors

    bb = digits["bb"]
    weights = [t.get() for kind in ("W_up", "W_down") for t in bb.target_modules(kind)]

    def factors():
        out = {}
        for i, w in enumerate(weights):
            f = SVDFactors.of(w)
            out |= {f"{i}/U": f.U, f"{i}/S": f.S, f"{i}/Vh": f.Vh}
        return out

    assert_same_bits(under_each_count(factors), "SVD factors")


def test_one_thread_restores_the_thread_count_and_leaves_cuda_alone():
    from oodbench.threads import one_thread

    with cpu_threads(3):
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
        with one_thread("cuda:0"):
            assert torch.get_num_threads() == 3
        with pytest.raises(KeyError):
            with one_thread("cpu"):
                raise KeyError("x")
        assert torch.get_num_threads() == 3


def test_extracted_features_vanilla_and_setar_are_the_same_for_any_thread_count(digits):
    """Vanilla features were thread-independent already; the SeTAR-modified ones were not (the SVD)."""
    assert_same_bits(under_each_count(lambda: _features(digits)), "vanilla features")
    assert_same_bits(under_each_count(lambda: _features(digits, _plan())), "SeTAR features")


def _score_inputs(d):
    """Fit / ID / OOD Features of the digits images with a SeTAR plan applied (CLIP scores)."""
    from oodbench.features import Features

    feats = _features(d, _plan())
    ids, ood = d["sources"]["digits 0-5 (test)"], d["sources"]["digits 6-9"]
    bb = d["bb"]
    scale = float(bb.logit_scale())

    def split(name, src, rows):
        image, local, text = (feats[f"{name}/{k}"][rows] if k != "text" else feats[f"{name}/{k}"]
                              for k in ("image", "local", "text"))
        unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
        logits = (scale * unit(image) @ unit(text).T).astype(np.float32)
        return Features({"image": image, "local": local, "logits": logits, "labels": np.asarray(src.labels)[rows]},
                        {"text": text, "logit_scale": scale, "class_names": d["classes"], "prompt": d["prompt"]},
                        name, {})

    return {"fit": split("digits 0-5 (test)", ids, slice(0, 32)), "id": split("digits 0-5 (test)", ids, slice(32, 64)),
            "ood": split("digits 6-9", ood, slice(0, 64))}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """Every 200th noun and adjective of the shipped WordNet corpus (the mining scores' candidates)."""
    from oodbench.postprocessors.neglabel_corpus import load_corpus

    corpus = load_corpus("wordnet")
    path = tmp_path_factory.mktemp("corpus") / "corpus.tsv"
    lines = ["# every 200th word of the shipped corpus"]
    lines += [f"noun\tnoun.thread\t{w}" for w in corpus.nouns[::200]]
    lines += [f"adj\tadj.all\t{w}" for w in corpus.adjectives[::200]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _score_all(splits, encoder, small_corpus, kind: str) -> dict:
    """Scores of every registered postprocessor that can score ``splits`` (higher = ID) on their ID and OOD sets."""
    from oodbench.registry import get, names

    out = {}
    for name in names("postprocessors"):
        cls = get("postprocessors", name)
        if splits["id"].missing(set(cls.requires) - {"class_names", "prompt"}):
            continue
        params = {p: small_corpus for p in ("corpus",) if p in cls().get_params()}
        if "neg_count" in cls().get_params():
            params["neg_count"] = 64
        if "ngroup" in cls().get_params():
            params["ngroup"] = 5
        post = cls(**params)
        post.fit(splits["fit"] if cls.fit_on != "shared" else splits["id"], encoder=encoder)
        out[f"{kind}/{name}/id"] = np.asarray(post.score(splits["id"]))
        out[f"{kind}/{name}/ood"] = np.asarray(post.score(splits["ood"]))
    return out


def test_every_score_is_the_same_for_any_thread_count(digits, small_corpus, tmp_path):
    """Every registered postprocessor on SeTAR-modified digits features (CLIP scores, NegLabel / CSP / AdaNeg
    mining through digits_clip's text tower) and on classifier features with a 2,000-image fit bank (KNN's faiss
    search, ReAct, DICE, ASH), scored under 1, 2 and 4 threads. (Scoring was thread-independent before
    oodbench.threads; this keeps it so.)"""
    from oodbench.testing.fixtures import classifier_splits

    clip = _score_inputs(digits)
    encoder = digits["bb"].text_encoder()
    encoder.cache_dir = str(tmp_path / "enc")

    def clip_scores():
        encoder.cache_dir = str(tmp_path / f"enc{torch.get_num_threads()}")  # mine again under this count
        return _score_all(clip, encoder, small_corpus, "clip")

    got = under_each_count(clip_scores)
    assert {k.split("/")[1] for k in got[1]} >= {"mcm", "glmcm", "neglabel", "csp", "adaneg"}
    assert_same_bits(got, "CLIP scores")
    cls_splits = _big_classifier_splits(classifier_splits())
    got = under_each_count(lambda: _score_all(cls_splits, None, small_corpus, "classifier"))
    assert {k.split("/")[1] for k in got[1]} >= {"knn", "react", "dice", "ash_p", "msp", "energy"}
    assert_same_bits(got, "classifier scores")


def _big_classifier_splits(small):
    """The synthetic classifier sets, with their fit bank repeated with noise to 2,000 x 512 (faiss and BLAS
    shapes where threads would split the work)."""
    from oodbench.features import Features

    rng = np.random.default_rng(7)
    proj = rng.standard_normal((64, 512)).astype(np.float32) / 8

    def grow(f: Features, n: int) -> Features:
        idx = np.arange(n) % len(f)
        pen = np.maximum(f["penultimate"][idx] @ proj + 0.05 * rng.standard_normal((n, 512)), 0).astype(np.float32)
        w = np.asarray(f.shared["fc_weight"]) @ proj
        logits = (pen @ w.T).astype(np.float32) / 8
        return Features({"penultimate": pen, "logits": logits, "labels": f["labels"][idx],
                         "local_logits": f["local_logits"][idx]},
                        {**f.shared, "fc_weight": w.astype(np.float32), "fc_bias": f.shared["fc_bias"]}, f.name, {})

    return {"fit": grow(small["fit"], 2000), "id": grow(small["id"], 300), "ood": grow(small["ood"], 300)}


def test_search_plan_and_every_candidate_loss_are_the_same_for_any_thread_count(digits):
    """A SeTAR search (both towers, W_up, ratios 0 / 0.3) on the digits val set. Fails without oodbench.threads:
    the candidates' losses moved in the last bits with the SVD."""
    from oodbench.methods.setar.config import SearchConfig
    from oodbench.methods.setar.search import search

    config = SearchConfig(ratios=(0.0, 0.3), lam=0.25, top_k=2)

    def run():
        res = search(digits["bb"], digits["val_images"], digits["val_labels"], digits["classes"], digits["prompt"],
                     config)
        out = {"plan": np.array([e.ratio for e in res.plan.entries])}
        for i, c in enumerate(res.log.candidates):
            row = c if isinstance(c, dict) else vars(c)
            for k in ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent"):
                out[f"{i}/{k}"] = np.float64(row[k])
        return out

    got = under_each_count(run)
    assert len(got[1]) == 1 + 14 * 5  # the plan, then 7 weights x 2 ratios x 5 values
    assert_same_bits(got, "SeTAR search")


@pytest.mark.parametrize("method", ["lora", "setar-ft"])
def test_short_fine_tuning_is_the_same_for_any_thread_count(digits, method):
    """Two SGD steps (batch 32 of 64 ID-val images) of LoRA / SeTAR+FT on digits_clip: the trained factors, the
    merged weights and the logged losses. Fails without oodbench.threads: the weight gradients' long inner sums."""
    from oodbench.data.sources import ArraySource
    from oodbench.methods.finetune.adapters import lora_adapters, setar_ft_adapters
    from oodbench.methods.finetune.augment import CLIP_AUGMENT, train_transform
    from oodbench.methods.finetune.trainer import TrainConfig, train
    from oodbench.methods.finetune.weights import weight_forward

    bb, val = digits["bb"], digits["val"]
    source = ArraySource("val", val.images[:64], val.labels[:64])
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=32, lam=0.25, top_k=2, seed=3, augment=CLIP_AUGMENT)

    def run():
        adapters = (lora_adapters(bb, "W_up", 8, 16.0) if method == "lora" else setar_ft_adapters(bb, _plan()))
        try:
            forward = weight_forward(bb, adapters, digits["classes"], digits["prompt"])
            log = train(forward, adapters.parameters(), source, train_transform(bb, cfg.augment), cfg, "cpu",
                        quiet=True, modules=[bb.model])
            out = {f"factor/{k}": v.clone() for k, v in adapters.state().items()}
            out |= {f"merged/{k}": v.clone() for k, v in adapters.merged().items()}
            out["losses"] = np.array([[s[k] for k in ("locoop_loss", "loss_id", "loss_ood")] for s in log.steps])
            return out
        finally:
            adapters.remove()

    got = under_each_count(run)
    assert len(got[1]["losses"]) == 2
    assert_same_bits(got, f"{method} fine-tuning")


def test_thread_count_is_recorded_but_not_part_of_the_feature_cache_key(digits, tmp_path):
    """The numbers do not depend on it, so features cached under 1 thread serve a run under 4 without a forward
    pass; the entry's meta.json records the thread count it was written with."""
    from oodbench.features.cache import FeatureCache
    from oodbench.features.extract import extract_features

    bb, src, cache = digits["bb"], digits["sources"]["digits 6-9"], FeatureCache(tmp_path)
    calls = []
    forward = bb.compute_features
    bb.compute_features = lambda images, names: (calls.append(1), forward(images, names))[1]
    try:
        with cpu_threads(1):
            first = extract_features(bb, src, ["image"], cache=cache, batch_size=64, num_workers=0, device="cpu")
        n = len(calls)
        with cpu_threads(4):
            again = extract_features(bb, src, ["image"], cache=cache, batch_size=64, num_workers=0, device="cpu")
    finally:
        del bb.compute_features
    assert n > 0 and len(calls) == n
    np.testing.assert_array_equal(first["image"], again["image"])
    meta = json.loads((tmp_path / first.meta["cache_key"] / "meta.json").read_text(encoding="utf-8"))
    assert meta["provenance"]["threads"] == 1
    assert "thread" not in json.dumps(meta["ingredients"])
