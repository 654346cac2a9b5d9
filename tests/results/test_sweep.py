"""Sweeps and seeds: grid parsing, one stored run per point, cached features and plans reused (forward passes
counted), mean ± std equal to a computation from the stored per-image scores with scikit-learn."""

import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_helpers import ForwardCounter  # noqa: E402

from oodbench.backbones import create_backbone  # noqa: E402
from oodbench.cache import CacheRoot  # noqa: E402
from oodbench.cli import main  # noqa: E402
from oodbench.data.sources import ArraySource  # noqa: E402
from oodbench.datasets.digits import resolve_digits  # noqa: E402
from oodbench.errors import UserError  # noqa: E402
from oodbench.orchestration.pipeline import RunSettings, run  # noqa: E402
from oodbench.results import ResultsStore  # noqa: E402
from oodbench.orchestration.sweep import GridPoint, expand_grid, parse_grid, parse_seeds, run_grid, run_seeds  # noqa: E402
from oodbench.reporting.aggregate import aggregate, aggregate_csv  # noqa: E402


def _cut(src, n):
    idx = np.linspace(0, len(src) - 1, n).round().astype(int)
    return ArraySource(src.name, src.images[idx], src.labels[idx])


@pytest.fixture(scope="module")
def bench():
    full = resolve_digits()
    return dataclasses.replace(full, id_test=_cut(full.id_test, 48), id_val=_cut(full.id_val, 24),
                               id_fit=_cut(full.id_fit, 30),
                               ood={n: _cut(s, 20) for n, s in list(full.ood.items())[:3]}, ood_val={})


def test_grid_parsing_and_expansion():
    axes = parse_grid(["setar.lam=0.05,0.1", "mcm.tau=1,2.5", "setar.prune=minor,random"])
    assert [(a.kind, a.owner, a.name, a.values) for a in axes] == [
        ("method", "setar", "lam", (0.05, 0.1)), ("post", "mcm", "tau", (1, 2.5)),
        ("method", "setar", "prune", ("minor", "random"))]
    points = expand_grid(axes)
    assert len(points) == 8
    assert points[0] == GridPoint((("setar", "lam", 0.05), ("setar", "prune", "minor")), (("mcm", "tau", 1),))
    assert points[1].label == "setar.lam=0.05, setar.prune=random, mcm.tau=1"
    assert points[-1].options == (("setar", "lam", 0.1), ("setar", "prune", "random"))
    assert expand_grid([]) == [GridPoint()]
    s = points[0].apply(RunSettings("b", method_options={"setar": {"top_k": 3}}, params={"mcm": {"tau": 9}}))
    assert s.method_options == {"setar": {"top_k": 3, "lam": 0.05, "prune": "minor"}} and s.params == {"mcm": {"tau": 1}}
    assert parse_seeds("3,4,5") == (3, 4, 5) and parse_seeds(None) == ()
    for bad, msg in ((["setar.lam"], "OWNER.NAME="), (["nosuch.x=1"], "neither a method"),
                     (["setar.nosuch=1"], "no option 'nosuch'"), (["mcm.nosuch=1"], "no hyperparameter"),
                     (["setar.seed=1,2"], "--seeds"), (["setar.lam=1", "setar.lam=2"], "twice")):
        with pytest.raises(UserError, match=msg):
            parse_grid(bad)
    with pytest.raises(UserError, match="integers"):
        parse_seeds("3,x")


def _extraction_forwards(bench, tmp_path):
    """Image and text forward passes of one plain `run` of mcm + glmcm on a fresh cache."""
    bb = create_backbone("test_clip_tiny")
    counter = ForwardCounter(bb)
    run(bench, RunSettings("test_clip_tiny", postprocessors=("mcm", "glmcm")), CacheRoot(tmp_path / "c0"), None,
        backbone=bb)
    return counter.images, counter.texts


def test_a_score_grid_over_seeds_extracts_features_once(bench, tmp_path):
    images, texts = _extraction_forwards(bench, tmp_path)
    assert images > 0
    bb = create_backbone("test_clip_tiny")
    counter = ForwardCounter(bb)
    store = ResultsStore(tmp_path / "runs")
    settings = RunSettings("test_clip_tiny", postprocessors=("mcm", "glmcm"))
    results = run_grid(bench, settings, expand_grid(parse_grid(["mcm.tau=0.5,1.0"])), (3, 4),
                       CacheRoot(tmp_path / "c1"), store, bb)
    assert (counter.images, counter.texts) == (images, texts)  # 4 points, one extraction
    assert len(results) == 8
    # GL-MCM's runs do not depend on MCM's tau: the two points' identical GL-MCM runs are stored once per seed
    assert len(store.run_ids()) == 6 == len({r.record.run_id for r in results})
    assert {r.record.run_id for r in results} == set(store.run_ids())
    taus = sorted((r.record.seed, r.record.postprocessor["params"]["tau"]) for r in results
                  if r.result.postprocessor == "mcm")
    assert taus == [(3, 0.5), (3, 1.0), (4, 0.5), (4, 1.0)]


def test_setar_grid_reuses_plans_and_features_and_aggregates(bench, tmp_path):
    images, _ = _extraction_forwards(bench, tmp_path)
    bb = create_backbone("test_clip_tiny")
    caches, store = CacheRoot(tmp_path / "c1"), ResultsStore(tmp_path / "runs")
    settings = RunSettings("test_clip_tiny", postprocessors=("mcm",), methods=("none", "setar"),
                           method_options={"setar": {"ratios": (0.0, 0.2), "top_k": 2}})
    points = expand_grid(parse_grid(["setar.lam=0.05,0.5"]))
    counter = ForwardCounter(bb)
    first = run_grid(bench, settings, points, (3, 4), caches, store, bb)
    # one search per lam (not per seed: the minor prune does not use the seed); vanilla once per seed
    assert len([p for p in caches.plans.iterdir() if not p.name.endswith(".partial")]) == 2
    assert [r.result.method for r in first].count("none") == 2 and len(first) == 6
    plans = {r.record.plan["hash"] for r in first}
    assert counter.images == len(plans) * images  # one extraction per distinct model
    # the same sweep again: every search and feature from the caches, not one forward pass
    counter2 = ForwardCounter(bb)
    calls = {"hidden": 0}
    hidden = bb.hidden

    def counting_hidden(*a, **k):
        calls["hidden"] += 1
        return hidden(*a, **k)

    bb.hidden = counting_hidden
    second = run_grid(bench, settings, points, (3, 4), caches, store, bb)
    assert (counter2.images, counter2.texts, calls["hidden"]) == (0, 0, 0)
    # ... and stores nothing again: every result of the rerun is the run stored the first time (issue 19)
    assert len(store.run_ids()) == len(first) == len(second)
    assert sorted(r.record.run_id for r in second) == sorted(r.record.run_id for r in first) == store.run_ids()
    # mean ± std over seeds from the stored per-image scores, with scikit-learn
    rows = {(r.point, r.method): r for r in aggregate(second)}
    for lam in (0.05, 0.5):
        row = rows[(f"setar.lam={lam}", "setar")]
        per_seed = []
        for run_id in row.run_ids:
            sc = store.scores(run_id)
            ood = [k for k in sc if k.startswith("ood/")]
            aucs = [roc_auc_score(np.r_[np.ones(len(sc["id"])), np.zeros(len(sc[k]))], np.r_[sc["id"], sc[k]])
                    for k in ood]
            per_seed.append(np.mean(aucs))
        assert row.seeds == (3, 4)
        assert row.mean["average"]["auroc"] == pytest.approx(np.mean(per_seed), abs=1e-9)
        assert row.std["average"]["auroc"] == pytest.approx(np.std(per_seed), abs=1e-9)
    long = list(csv.DictReader(__import__("io").StringIO(aggregate_csv(list(rows.values())))))
    assert {r["n"] for r in long} == {"2"}


def test_random_prune_seed_follows_the_run_seed(bench, tmp_path):
    bb = create_backbone("test_clip_tiny")
    settings = RunSettings("test_clip_tiny", postprocessors=("mcm",), methods=("setar",),
                           method_options={"setar": {"ratios": (0.0, 0.3), "prune": "random", "top_k": 2}})
    results = run_seeds(bench, settings, (3, 4), CacheRoot(tmp_path / "c"), ResultsStore(tmp_path / "runs"), bb)
    assert sorted((r.seed, r.record.plan["seed"]) for r in results) == [(3, 3), (4, 4)]


def test_sweep_command(tmp_path):
    out = tmp_path / "agg.csv"
    rc = main(["sweep", "--backbone", "test_clip_tiny", "--post", "mcm", "--grid", "mcm.tau=0.5,1", "--seeds", "3,4",
               "--results-root", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
               "-q"])
    assert rc == 0
    rows = list(csv.DictReader(open(out)))
    assert {r["point"] for r in rows} == {"(any)"}  # vanilla only: one row per tau, point-independent
    assert {r["n"] for r in rows} == {"2"}
    assert len(ResultsStore(tmp_path / "runs").run_ids()) == 4
    before = (tmp_path / "agg.csv").read_text()
    assert main(["sweep", "--backbone", "test_clip_tiny", "--post", "mcm", "--grid", "mcm.tau=0.5,1", "--seeds", "3,4",
                 "--results-root", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "-q"]) == 0
    assert len(ResultsStore(tmp_path / "runs").run_ids()) == 4  # the rerun reuses the stored runs (issue 19)
    assert (tmp_path / "agg.csv").read_text() == before
    assert main(["sweep", "--grid", "nosuch.x=1", "--results-root", str(tmp_path / "r2")]) == 2
    assert not (tmp_path / "r2").exists()


def test_a_group_takes_its_seed_as_each_method_says():
    """A table group's options for its seed come from the method contract: SeTAR's random prune and SeTAR+FT's
    nested SeTAR search both take the run's seed; a minor-prune search does not."""
    from oodbench.orchestration.sweep import Group
    from oodbench.paper import RunSpec

    def opts(method, options, seed):
        return Group([RunSpec.make("digits", "digits_clip", "mcm", method, options, seed=seed)]).method_options()

    assert opts("setar", {"prune": "random"}, 4)["seed"] == 4
    assert opts("setar-ft", {"setar": {"prune": "random"}}, 4)["setar"]["seed"] == 4
    assert "seed" not in opts("setar", {"prune": "minor"}, 4)
    assert opts("setar-ft", {"setar": {"prune": "random"}}, None) == {"setar": {"prune": "random"}}
