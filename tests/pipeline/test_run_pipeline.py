"""The `oodbench run` pipeline: numbers equal a direct computation, no forward pass when only the score
changes, SeTAR beside vanilla with the weights restored, and one-line errors for bad pairings."""

import numpy as np
import pytest
import torch
from pipeline_helpers import ForwardCounter

from oodbench.errors import IncompatibleError
from oodbench.cache import CacheRoot
from oodbench.metrics import evaluate
from oodbench.orchestration.pipeline import RunSettings, run, select_postprocessors
from oodbench.registry import RegistryError
from oodbench.results import ResultsStore


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def test_stored_metrics_equal_a_direct_computation(small_digits, tiny_clip, tmp_path):
    cache, store = CacheRoot(tmp_path), ResultsStore(tmp_path / "runs")
    results = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("mcm", "energy")), cache, store,
                  backbone=tiny_clip)
    assert [r.postprocessor for r in results] == ["mcm", "energy"]
    # independent path: the backbone's own forward and text encoder, formulas written here
    spec = small_digits.spec
    with torch.no_grad():
        text = tiny_clip.encode_text([spec.prompt.format(c) for c in spec.class_names]).numpy()
        scale = float(tiny_clip.shared_features({"logit_scale"}, list(spec.class_names), spec.prompt)["logit_scale"])

        def image_emb(src):
            x = torch.stack([tiny_clip.preprocess()(src.load(i)) for i in range(len(src))])
            return tiny_clip.compute_features(x, {"image"})["image"].numpy()

    def mcm(src):
        return _softmax(_cos(image_emb(src), text)).max(1)

    def energy(src):
        z = scale * _cos(image_emb(src), text)
        return np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)

    for r, fn in zip(results, (mcm, energy)):
        ref = evaluate(fn(small_digits.id_test), {n: fn(s) for n, s in small_digits.ood.items()})
        for name, row in ref.items():
            for metric, value in row.items():
                assert r.record.metrics[name][metric] == pytest.approx(value, abs=1e-6), (r.postprocessor, name)
        stored = store.scores(r.path.name)
        np.testing.assert_allclose(stored["id"], fn(small_digits.id_test), rtol=1e-5, atol=1e-6)
    rec = results[0].record
    assert rec.counts["id"] == 48 and rec.backbone["weights_hash"] == tiny_clip.weights_hash()
    assert rec.plan["name"] == "none" and rec.plan["hash"] == "none"
    assert rec.id_accuracy == pytest.approx(np.mean(np.argmax(_cos(image_emb(small_digits.id_test), text), 1)
                                                    == small_digits.id_test.labels))


def test_switching_postprocessors_and_aps_cost_no_forward_pass(small_digits, tiny_clip, tmp_path):
    cache = CacheRoot(tmp_path)
    run(small_digits, RunSettings("test_clip_tiny", postprocessors=("mcm", "glmcm"), aps=True), cache, None,
        backbone=tiny_clip)
    counter = ForwardCounter(tiny_clip)
    results = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("maxlogit", "energy", "mcm", "glmcm"),
                                            aps=True), cache, None, backbone=tiny_clip)
    assert counter.images == 0 and counter.texts == 0
    aps = {r.postprocessor: r.record.postprocessor["aps"] for r in results}
    assert aps["mcm"]["chosen"]["tau"] in (0.01, 1, 10) and len(aps["mcm"]["trials"]) == 3
    assert aps["maxlogit"] is None  # nothing to tune


def test_setar_beside_vanilla_restores_the_weights(small_digits, tiny_clip, tmp_path):
    from oodbench.methods.setar import Plan, PlanEntry

    plan = Plan([PlanEntry("vision", "W_up", 1, 0.4), PlanEntry("text", "W_up", 0, 0.25)], "minor", 5)
    plan_file = plan.save(tmp_path / "plan.json")
    before = {k: v.clone() for k, v in tiny_clip.model.state_dict().items()}
    cache = CacheRoot(tmp_path)
    results = run(small_digits, RunSettings("test_clip_tiny", postprocessors=("mcm",), methods=("none", "setar"),
                                            method_options={"setar": {"plan_file": str(plan_file)}}), cache, ResultsStore(tmp_path / "runs"),
                  backbone=tiny_clip)
    vanilla, setar = (r.record for r in results)
    assert setar.plan["hash"] == plan.hash() != "none" and vanilla.plan["hash"] == "none"
    assert setar.metrics["average"]["auroc"] != vanilla.metrics["average"]["auroc"]
    for k, v in tiny_clip.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_setar_search_when_no_plan_is_given_is_cached(small_digits, tiny_clip, tmp_path):
    cache = CacheRoot(tmp_path)
    settings = RunSettings("test_clip_tiny", postprocessors=("mcm",), methods=("setar",),
                           method_options={"setar": {"ratios": (0.0, 0.2), "top_k": 2, "modality": "vision"}})
    first = run(small_digits, settings, cache, None, backbone=tiny_clip)[0].record
    plans = list((tmp_path / "plans").iterdir())
    assert len(plans) == 1 and (plans[0] / "search_steps.csv").is_file()
    assert first.plan["search"]["val_split"] == small_digits.spec.id_val.name
    counter = ForwardCounter(tiny_clip)
    second = run(small_digits, settings, cache, None, backbone=tiny_clip)[0].record
    assert counter.images == 0  # plan and features both cached
    assert second.plan["hash"] == first.plan["hash"] and second.metrics == first.metrics


def test_bad_pairings_are_refused(small_digits, tiny_clip, tmp_path):
    with pytest.raises(IncompatibleError, match="react.*penultimate"):
        select_postprocessors(["react"], tiny_clip)
    chosen = {c.registry_name for c in select_postprocessors(["all"], tiny_clip)}
    assert {"mcm", "glmcm", "neglabel", "msp", "energy", "maxlogit"} <= chosen
    assert not chosen & {"react", "dice", "ash_s", "ash_b", "ash_p", "knn"}  # need a classifier's penultimate
    with pytest.raises(RegistryError, match="no-such-method"):
        run(small_digits, RunSettings("test_clip_tiny", methods=("no-such-method",)), CacheRoot(tmp_path), None,
            backbone=tiny_clip)
