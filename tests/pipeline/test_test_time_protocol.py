"""The declared test-time protocol (oodbench.stream): one stream per OOD set (ID test + that set), a seeded
torch.randperm order cut into batches, a fresh state per stream, metrics as the mean over the order seeds with
their std and per-order values recorded, first-order scores stored; static scores unaffected."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oodbench.cache import CacheRoot
from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.features.extract import extract_benchmark
from oodbench.orchestration.pipeline import RunSettings, _text_encoder, run
from oodbench.postprocessors.adaneg import AdaNeg
from oodbench.postprocessors.base import Postprocessor
from oodbench.results import ResultsStore
from oodbench.stream import evaluate_streams, stream_order


class Drift(Postprocessor):
    """A toy test-time score: ``x_0 + 0.01 · (images seen in earlier batches of this stream)``."""

    requires: ClassVar[frozenset[str]] = frozenset({"image"})
    test_time: ClassVar[bool] = True
    registry_name: ClassVar[str] = "drift"

    def __init__(self, seeds=(0, 1, 2), batch_size=4):
        self.seeds = seeds
        self.batch_size = batch_size

    def stream_protocol(self):
        return {"seeds": self.seeds, "batch_size": self.batch_size}

    def score_stream(self, batches):
        seen, out = 0, []
        for b in batches:
            out.append(b["image"][:, 0].astype(np.float64) + 0.01 * seen)
            seen += len(b)
        return out


def _feats(values, name):
    return Features({"image": np.asarray(values, np.float32)[:, None]}, {}, name)


def test_stream_order_is_a_seeded_randperm():
    np.testing.assert_array_equal(stream_order(11, 4),
                                  torch.randperm(11, generator=torch.Generator().manual_seed(4)).numpy())
    assert not np.array_equal(stream_order(11, 4), stream_order(11, 5))


def test_protocol_equals_a_plain_computation():
    rng = np.random.default_rng(0)
    id_f = _feats(rng.normal(1.0, 1.0, 13), "id")
    oods = {"a": _feats(rng.normal(0.0, 1.0, 9), "a"), "b": _feats(rng.normal(-0.3, 1.0, 6), "b")}
    res = evaluate_streams(Drift(), id_f, oods)

    per_seed = {}
    first = {}
    for seed in (0, 1, 2):
        for name, ood in oods.items():
            x = np.concatenate([id_f["image"][:, 0], ood["image"][:, 0]]).astype(np.float64)
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).numpy()
            s = np.empty(len(x))
            for k in range(0, len(x), 4):  # fresh state per stream: the count restarts for every OOD set
                s[order[k:k + 4]] = x[order[k:k + 4]] + 0.01 * k
            labels = np.r_[np.ones(13), np.zeros(len(ood))]
            per_seed[(seed, name)] = roc_auc_score(labels, s)
            if seed == 0:
                first[name] = s
    for name in oods:
        vals = [per_seed[(s, name)] for s in (0, 1, 2)]
        assert res.metrics[name]["auroc"] == pytest.approx(np.mean(vals), abs=1e-12)
        assert res.record["std"][name]["auroc"] == pytest.approx(np.std(vals), abs=1e-12)
        for s in (0, 1, 2):
            assert res.record["per_order"][str(s)][name]["auroc"] == pytest.approx(per_seed[(s, name)], abs=1e-12)
        np.testing.assert_array_equal(res.ood_scores[name], first[name][13:])
        np.testing.assert_array_equal(res.extra_scores[f"id/{name}"], first[name][:13])
    np.testing.assert_array_equal(res.id_scores, first["a"][:13])
    assert res.metrics["average"]["auroc"] == pytest.approx(
        np.mean([np.mean([per_seed[(s, n)] for n in oods]) for s in (0, 1, 2)]), abs=1e-12)
    assert res.record["seeds"] == [0, 1, 2] and res.record["batch_size"] == 4
    assert np.std([per_seed[(s, "a")] for s in (0, 1, 2)]) > 0  # the orders really differ


@pytest.mark.parametrize("seeds", [(), (1, 1), (-1,), ("a",), 1.5])
def test_bad_stream_seeds_are_one_line_errors(seeds):
    with pytest.raises(UserError, match="stream_seeds"):
        evaluate_streams(Drift(seeds=seeds), _feats([1, 2], "id"), {"o": _feats([0, 1], "o")})


def _corpus(tmp_path):
    lines = [*[f"noun\tnoun.test\tnoun{i} word{i % 7}" for i in range(40)],
             *[f"adj\tadj.all\tadj{i}" for i in range(20)]]
    path = tmp_path / "corpus.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_pipeline_runs_adaneg_under_the_protocol_and_leaves_static_scores_alone(small_digits, tiny_clip, tmp_path):
    cache, store = CacheRoot(tmp_path / "c"), ResultsStore(tmp_path / "runs")
    params = {"adaneg": {"corpus": _corpus(tmp_path), "stream_seeds": (0, 3), "batch_size": 16}}
    results = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("adaneg", "mcm"), params=params),
                  cache, store, backbone=tiny_clip)
    alone = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("mcm",)), CacheRoot(tmp_path / "c2"),
                ResultsStore(tmp_path / "runs2"), backbone=tiny_clip)[0]
    ada, mcm = results
    # static: same metrics and per-image scores as a run without the test-time score, no stream record
    assert "stream" not in mcm.record.extra
    assert mcm.record.metrics == alone.record.metrics
    assert mcm.scores.keys() == alone.scores.keys() == {"id", *(f"ood/{n}" for n in small_digits.ood)}
    for k in mcm.scores:
        np.testing.assert_array_equal(mcm.scores[k], alone.scores[k])

    stream = ada.record.extra["stream"]
    assert stream["seeds"] == [0, 3] and stream["batch_size"] == 16
    for name, row in ada.record.metrics.items():
        for m, v in row.items():
            vals = [stream["per_order"][s][name][m] for s in ("0", "3")]
            assert v == pytest.approx(np.mean(vals), abs=1e-12)
            assert stream["std"][name][m] == pytest.approx(np.std(vals), abs=1e-12)

    # stored per-image scores = the first order, fed by hand to a separately fitted AdaNeg
    feats = extract_benchmark(tiny_clip, small_digits, {"image", "class_names", "logit_scale", "labels"},
                              cache=cache.features, plan_hash="none", batch_size=128, precision="fp32", device="cpu")
    id_name = small_digits.spec.id_test.name
    post = AdaNeg(corpus=params["adaneg"]["corpus"], batch_size=16).fit(feats[id_name], _text_encoder(tiny_clip, cache))
    stored = store.scores(ada.path.name)
    for name in small_digits.ood:
        ood = next(f for f in feats.values() if f.name == name)
        both = Features.concat([feats[id_name], ood])
        order = torch.randperm(len(both), generator=torch.Generator().manual_seed(0)).numpy()
        outs = post.score_stream([both.subset(order[k:k + 16]) for k in range(0, len(order), 16)])
        expected = np.empty(len(both))
        expected[order] = np.concatenate(outs)
        n_id = len(feats[id_name])
        np.testing.assert_allclose(stored[f"ood/{name}"], expected[n_id:], rtol=0, atol=1e-12)
        np.testing.assert_allclose(stored[f"id/{name}"], expected[:n_id], rtol=0, atol=1e-12)
        assert roc_auc_score(np.r_[np.ones(n_id), np.zeros(len(ood))], expected) == pytest.approx(
            stream["per_order"]["0"][name]["auroc"], abs=1e-9)
    np.testing.assert_array_equal(stored["id"], stored[f"id/{next(iter(small_digits.ood))}"])


def test_the_run_table_shows_mean_and_std_over_orders(small_digits, tiny_clip, tmp_path):
    from rich.console import Console

    from oodbench.reporting.render import comparison_table

    params = {"adaneg": {"corpus": _corpus(tmp_path), "stream_seeds": (0, 3), "batch_size": 16}}
    ada = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("adaneg",), params=params),
              CacheRoot(tmp_path / "c"), None, backbone=tiny_clip)[0].record
    console = Console(width=200, record=True)
    console.print(comparison_table("AdaNeg", {"Vanilla": ada}))
    text = console.export_text()
    name = next(iter(small_digits.ood))
    mean, std = ada.metrics[name]["auroc"], ada.extra["stream"]["std"][name]["auroc"]
    assert f"{100 * mean:.2f} ± {100 * std:.2f}" in text
    assert "mean ± std over stream orders" in " ".join(text.split())
