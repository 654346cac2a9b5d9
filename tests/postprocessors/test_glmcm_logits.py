"""GL-MCM over a classifier's logits (``glmcm_logits``) and MSP at T = 100: the two scores behind the published
Swin-V2-B fine-tuning columns, against a plain re-implementation of SeTAR's ``scorers.py`` (``mcm_score`` and
``gl_mcm_score`` on ``softmax(logits / temperature)``, returned negated there: higher = OOD)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oodbench.features import Features
from oodbench.registry import get


def official_scores(logits_global: np.ndarray, logits_local: np.ndarray, temperature: float) -> dict[str, np.ndarray]:
    """SeTAR's Scorers.cal_scores, written out: softmax in torch float32, maxima in numpy, negated scores.
    ``logits_local`` is ``[B, H, W, C]`` as the official Swin model returns it."""
    probs_global = F.softmax(torch.from_numpy(logits_global) / temperature, dim=1).numpy()
    probs_local = F.softmax(torch.from_numpy(logits_local) / temperature, dim=-1).numpy()
    mcm = -np.max(probs_global, axis=1)
    return {"mcm_score": mcm, "gl_mcm_score": mcm - np.max(probs_local, axis=(1, 2, 3))}


def _arrays(seed=0, n=40, h=4, w=4, c=30, scale=60.0):
    rng = np.random.default_rng(seed)
    g = (scale * rng.standard_normal((n, c))).astype(np.float32)
    loc = (scale * rng.standard_normal((n, h, w, c))).astype(np.float32)
    return g, loc


def _features(g, loc):
    return Features({"logits": g, "local_logits": loc.reshape(len(loc), -1, loc.shape[-1]),
                     "labels": np.zeros(len(g), np.int64)}, {}, "x")


@pytest.mark.parametrize("temperature", [100.0, 1.0, 7.5])
def test_glmcm_logits_equals_the_official_gl_mcm_score(temperature):
    g, loc = _arrays()
    ref = official_scores(g, loc, temperature)["gl_mcm_score"]
    ours = get("postprocessors", "glmcm_logits")(temperature=temperature).score(_features(g, loc))
    assert ours.dtype == np.float64 and ours.shape == (len(g),)
    np.testing.assert_allclose(ours, -ref, rtol=0, atol=1e-6)
    # the local term matters: global MCM alone is another score
    assert np.abs(ours + official_scores(g, loc, temperature)["mcm_score"]).max() > 1e-3


def test_glmcm_logits_lambda_weights_the_local_term():
    g, loc = _arrays(seed=1)
    ref = official_scores(g, loc, 100.0)
    local = ref["mcm_score"] - ref["gl_mcm_score"]  # max local probability
    ours = get("postprocessors", "glmcm_logits")(temperature=100.0, lambda_local=0.5).score(_features(g, loc))
    np.testing.assert_allclose(ours, -ref["mcm_score"] + 0.5 * local, rtol=0, atol=1e-6)


def test_msp_at_temperature_100_is_the_official_mcm_score_on_logits():
    """The published Swin "MSP" column: mcm_score on logits / 100 — oodbench's msp with temperature=100."""
    g, loc = _arrays(seed=2)
    ref = official_scores(g, loc, 100.0)["mcm_score"]
    ours = get("postprocessors", "msp")(temperature=100.0).score(_features(g, loc))
    np.testing.assert_allclose(ours, -ref, rtol=0, atol=1e-6)
    assert np.abs(get("postprocessors", "msp")().score(_features(g, loc)) + ref).max() > 1e-2  # T=1 differs


def test_glmcm_logits_declares_what_it_needs_and_refuses_a_clip_pairing():
    cls = get("postprocessors", "glmcm_logits")
    assert cls.requires == frozenset({"logits", "local_logits"})
    from oodbench.errors import IncompatibleError

    with pytest.raises(IncompatibleError, match="local_logits"):
        cls.check_compatible({"logits", "penultimate"}, "resnet-like")
    with pytest.raises(ValueError, match="3-D"):
        cls().score(Features({"logits": np.zeros((2, 3), np.float32),
                              "local_logits": np.zeros((2, 3), np.float32)}, {}, "bad"))


def _swin_reference_local():
    path = Path(__file__).resolve().parents[1] / "backbones" / "backbone_refs.py"
    spec = importlib.util.spec_from_file_location("backbone_refs_for_glmcm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.swin_reference_local


def test_glmcm_logits_through_a_tiny_swin_end_to_end():
    """oodbench run (pipeline) on test_swin_tiny: the stored per-image scores equal the official formula applied to
    the model's own logits and to the per-patch logits rebuilt from the weights (SeTAR's Swin value path)."""
    from PIL import Image

    from oodbench.backbones import create_backbone
    from oodbench.orchestration.pipeline import RunSettings, run
    from oodbench.testing.fixtures import tiny_benchmark

    bench = tiny_benchmark(n_test=6, n_val=4, n_ood=5, size=64)
    settings = RunSettings(backbone="test_swin_tiny", postprocessors=("glmcm_logits", "msp"),
                           params={"glmcm_logits": {"temperature": 100.0}, "msp": {"temperature": 100.0}},
                           batch_size=4, quiet=True)
    results = {r.postprocessor: r for r in run(bench, settings)}
    ref_model = create_backbone("test_swin_tiny")
    m, prep = ref_model.model.eval(), ref_model.preprocess()
    reference_local = _swin_reference_local()
    for key, source in (("id", bench.id_test), ("ood/noise", bench.ood["noise"])):
        x = torch.stack([prep(Image.fromarray(a)) for a in source.images])
        with torch.no_grad():
            g = m(x).numpy()
        loc = reference_local(m, x).numpy()
        side = int(round(loc.shape[1] ** 0.5))
        ref = official_scores(g, loc.reshape(len(loc), side, side, -1), 100.0)
        np.testing.assert_allclose(results["glmcm_logits"].scores[key], -ref["gl_mcm_score"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(results["msp"].scores[key], -ref["mcm_score"], rtol=0, atol=1e-6)
    assert results["glmcm_logits"].record.postprocessor["params"] == {"temperature": 100.0, "lambda_local": 1.0}
