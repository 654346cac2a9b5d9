"""Full-spectrum evaluation: covariate-shifted ID sets (``csid``) are scored as ID. The record keeps the standard
metrics (ID test vs each OOD set) and, under ``extra["fsood"]``, the metrics of ID test + every csID set against
each OOD set and each csID set's accuracy; test-time scores get the csID images in the ID part of their streams."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oodbench.cache import CacheRoot
from oodbench.data.sources import ArraySource
from oodbench.features import Features
from oodbench.features.extract import extract_benchmark
from oodbench.metrics import evaluate
from oodbench.orchestration.pipeline import RunSettings, _text_encoder, run
from oodbench.postprocessors.adaneg import AdaNeg
from oodbench.results import ResultsStore
from oodbench.stream import evaluate_streams


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture()
def with_csid(small_digits):
    """The small digits benchmark plus two covariate-shifted copies of ID test images (inverted, darkened)."""
    src = small_digits.id_test
    inverted = ArraySource("digits inverted", 255 - src.images[:30], src.labels[:30])
    dark = ArraySource("digits dark", (src.images[10:40] // 3).astype(np.uint8), src.labels[10:40])
    return dataclasses.replace(small_digits, csid={"digits inverted": inverted, "digits dark": dark})


def test_csid_sets_are_scored_as_id(with_csid, tiny_clip, tmp_path):
    store = ResultsStore(tmp_path / "runs")
    (r,) = run(with_csid, RunSettings("test_clip_tiny", postprocessors=("mcm",)), CacheRoot(tmp_path), store,
               backbone=tiny_clip)
    spec = with_csid.spec
    with torch.no_grad():  # independent path: the backbone's own forward and text encoder, MCM written here
        text = tiny_clip.encode_text([spec.prompt.format(c) for c in spec.class_names]).numpy()

        def cos(src):
            x = torch.stack([tiny_clip.preprocess()(src.load(i)) for i in range(len(src))])
            return _unit(tiny_clip.compute_features(x, {"image"})["image"].numpy()) @ _unit(text).T

    mcm = {name: _softmax(cos(s)).max(1) for name, s in [("id", with_csid.id_test), *with_csid.csid.items()]}
    ood = {n: _softmax(cos(s)).max(1) for n, s in with_csid.ood.items()}
    joint = np.concatenate([mcm["id"], mcm["digits inverted"], mcm["digits dark"]])
    fs = r.record.extra["fsood"]
    for name, row in evaluate(joint, ood).items():
        for metric, value in row.items():
            assert fs["metrics"][name][metric] == pytest.approx(value, abs=1e-6), (name, metric)
    for name, s in ood.items():  # AUROC from scikit-learn, ID (test + csID) positive
        y = np.r_[np.ones(len(joint)), np.zeros(len(s))]
        assert fs["metrics"][name]["auroc"] == pytest.approx(roc_auc_score(y, np.r_[joint, s]), abs=1e-6)
    # the standard metrics are untouched by the csID sets
    for name, row in evaluate(mcm["id"], ood).items():
        assert r.record.metrics[name]["auroc"] == pytest.approx(row["auroc"], abs=1e-6)
    assert fs["metrics"]["average"]["auroc"] != pytest.approx(r.record.metrics["average"]["auroc"], abs=1e-9)
    for name, src in with_csid.csid.items():
        acc = np.mean(np.argmax(cos(src), 1) == src.labels)
        assert fs["csid"][name] == {"n": len(src), "accuracy": pytest.approx(acc)}
    stored = store.scores(r.path.name)
    np.testing.assert_allclose(stored["csid/digits dark"], mcm["digits dark"], rtol=1e-5, atol=1e-6)
    assert r.record.extra["data"]["splits"]["digits inverted"]["role"] == "csid"


def test_a_test_time_score_streams_the_csid_images_as_id(with_csid, tiny_clip, tmp_path):
    caches = CacheRoot(tmp_path)
    corpus = tmp_path / "corpus.tsv"  # a small word list: the full WordNet corpus costs minutes on a CPU
    corpus.write_text("".join(f"noun\tnoun.test\tthing{i} stuff{i % 5}\n" for i in range(50)))
    params = {"corpus": str(corpus), "stream_seeds": (0, 1), "batch_size": 16}
    settings = RunSettings("test_clip_tiny", postprocessors=("adaneg",), params={"adaneg": params})
    (r,) = run(with_csid, settings, caches, None, backbone=tiny_clip)
    fs = r.record.extra["fsood"]
    assert fs["stream"]["seeds"] == [0, 1]
    # by hand: the same fitted score over streams whose ID part is ID test followed by each csID set
    feats = extract_benchmark(tiny_clip, with_csid, AdaNeg.requires | {"labels", "class_names"}, cache=caches.features)
    post = AdaNeg()
    post.set_params(**params)
    post.fit(feats[with_csid.spec.id_test.name], encoder=_text_encoder(tiny_clip, caches))
    joint = Features.concat([feats[with_csid.spec.id_test.name], feats["digits inverted"], feats["digits dark"]])
    ref = evaluate_streams(post, joint, {n: feats[n] for n in with_csid.ood}, "adaneg")
    for name, row in ref.metrics.items():
        for metric, value in row.items():
            assert fs["metrics"][name][metric] == pytest.approx(value, abs=1e-9), (name, metric)
    for seed, rows in ref.record["per_order"].items():
        for name, row in rows.items():
            assert fs["stream"]["per_order"][seed][name] == pytest.approx(row, abs=1e-9), (seed, name)


def test_adhoc_csid_folders_through_the_cli(folders, capsys):
    import shutil

    from PIL import Image, ImageOps

    from oodbench.cli import main
    from oodbench.data.adhoc import adhoc_benchmark
    from oodbench.data.resolve import resolve

    shifted = folders / "shifted"
    for cls in ("digit 1", "digit 4"):  # two of the six class folders, inverted
        for f in sorted((folders / "id_test" / cls).iterdir()):
            (shifted / cls).mkdir(parents=True, exist_ok=True)
            ImageOps.invert(Image.open(f).convert("RGB")).save(shifted / cls / f.name)
    args = ["--backbone", "test_clip_tiny", "--id-test", str(folders / "id_test"), "--ood", f"blobs={folders / 'ood'}",
            "--classes", str(folders / "classes.txt"), "--cache-dir", str(folders / "cache"),
            "--results-root", str(folders / "runs"), "-q", "--post", "mcm"]
    assert main(["run", *args, "--csid", f"inverted={shifted}"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    (rec,) = ResultsStore(folders / "runs").runs()
    fs_avg = rec.extra["fsood"]["metrics"]["average"]
    assert f"average (FS) │ │ {100 * fs_avg['fpr95']:.2f} │ {100 * fs_avg['auroc']:.2f}" in printed, printed
    n = sum(1 for _ in shifted.rglob("*.png"))
    assert rec.extra["fsood"]["csid"]["inverted"]["n"] == n and rec.counts["id"] == 48
    assert rec.extra["data"]["splits"]["inverted"]["role"] == "csid"
    spec = adhoc_benchmark(folders / "id_test", folders / "classes.txt", {"blobs": folders / "ood"},
                           csid={"inverted": shifted})
    src = resolve(spec).csid["inverted"]  # labelled by the ID class order: 'digit 1' is class 1, 'digit 4' class 4
    assert sorted(set(src.labels.tolist())) == [1, 4] and len(src) == n
    (shifted / "digit 9").mkdir()
    Image.new("RGB", (8, 8)).save(shifted / "digit 9" / "x.png")
    shutil.rmtree(folders / "runs")
    assert main(["run", *args, "--csid", f"inverted={shifted}"]) == 2
    assert "digit 9" in capsys.readouterr().err and not (folders / "runs").exists()
