"""The greedy searches: acceptance rule, orders, and the fast search against the plain reference searcher."""

import csv
import json

import pytest
import torch
from reference_search import reference_search

from oodbench.errors import IncompatibleError, UserError
from scripted_evaluator import Scripted
from oodbench.methods.setar.plan import Plan
from oodbench.methods.setar.search import SearchConfig, greedy, search, search_order
from oodbench.methods.setar.searchlog import SearchLog


# ------------------------------------------------------------------------------ acceptance rule (scripted)
A, B, C = ("vision", "W_up", 2), ("vision", "W_up", 1), ("vision", "W_up", 0)


def _run(table, searcher="setar-s", ratios=(0.0, 0.1, 0.2)):
    cfg = SearchConfig(searcher=searcher, ratios=ratios)
    ev = Scripted({frozenset(k): v for k, v in table.items()})
    log = SearchLog()
    accepted, best = greedy(ev, [A, B, C], cfg, log)
    return accepted, best, log, ev


def test_best_is_global_and_strict():
    table = {(): 5.0, ((A, 0.1),): 4.0, ((A, 0.2),): 4.0,  # tie -> the earlier ratio 0.1
             ((A, 0.1), (B, 0.1)): 4.5, ((A, 0.1), (B, 0.2)): 4.2,  # better than step-0 baseline, worse than global best
             ((A, 0.1), (C, 0.2)): 3.0}
    accepted, best, log, _ = _run(table)
    assert accepted == [(A, 0.1), (B, 0.0), (C, 0.2)]
    assert best.locoop_loss == 3.0
    assert [s.locoop_loss for s in log.steps] == [4.0, 4.0, 3.0]  # running best after each step
    assert [c.best_so_far for c in log.candidates] == [True, True, False, False, False, False, False, False, True]


def test_ratio_zero_never_wins_after_step_zero():
    # ratio 0 reproduces the accepted configuration: equal, not better
    accepted, _, _, _ = _run({(): 5.0}, ratios=(0.0, 0.1))
    assert [r for _, r in accepted] == [0.0, 0.0, 0.0]


def test_les_tries_every_remaining_weight_and_accepts_the_best_pair():
    table = {(): 5.0, ((C, 0.2),): 2.0, ((B, 0.1),): 3.0, ((B, 0.1), (C, 0.2)): 1.0}
    accepted, best, log, ev = _run(table, searcher="les")
    assert accepted == [(C, 0.2), (B, 0.1), (A, 0.0)]
    assert best.locoop_loss == 1.0
    assert len(ev.calls) == 3 * (3 + 2 + 1)
    # a step that improves nothing keeps the first remaining weight at ratio 0
    accepted, _, _, _ = _run({(): 5.0}, searcher="les")
    assert accepted == [(A, 0.0), (B, 0.0), (C, 0.0)]


# ------------------------------------------------------------------------------------------- orders
def test_orders():
    towers = {"vision": 3, "text": 2}
    s = search_order(towers, SearchConfig())
    assert s == [("vision", "W_up", 2), ("vision", "W_up", 1), ("vision", "W_up", 0), ("text", "W_up", 1), ("text", "W_up", 0)]
    p = search_order(towers, SearchConfig(include_projection=True, weight_type="W_q"))
    assert p[0] == ("vision", "W_p", -1) and p[4] == ("text", "W_p", -1) and p[1] == ("vision", "W_q", 2)
    assert search_order(towers, SearchConfig(modality="text")) == [("text", "W_up", 1), ("text", "W_up", 0)]
    m = search_order({"vision": 2, "text": 2}, SearchConfig(searcher="mis"))
    assert m == [("vision", "W_up", 1), ("text", "W_up", 1), ("vision", "W_up", 0), ("text", "W_up", 0)]
    with pytest.raises(IncompatibleError, match="equal depth"):
        search_order({"vision": 24, "text": 12}, SearchConfig(searcher="mis"))
    with pytest.raises(UserError):
        search_order({"vision": 2, "text": 2}, SearchConfig(searcher="mis", modality="vision"))
    assert search_order({"vision": 2}, SearchConfig()) == [("vision", "W_up", 1), ("vision", "W_up", 0)]
    with pytest.raises(IncompatibleError):
        search_order({"vision": 2}, SearchConfig(modality="text"))


@pytest.mark.parametrize("kw", [{"searcher": "greedy"}, {"modality": "audio"}, {"prune": "big"}, {"ratios": ()},
                                {"ratios": (0, 1.2)}, {"top_k": -1}, {"lam": -1}, {"batch_size": 0}, {"metric": "auroc"}])
def test_bad_config_is_a_user_error(kw):
    with pytest.raises(UserError):
        SearchConfig(**kw)


# ------------------------------------------------------------------------------- fast vs reference
def _compare(fast, ref):
    settings = [[e.tower, e.weight_type, e.layer, e.ratio] for e in fast.plan.entries]
    assert settings == ref["settings"]
    assert len(fast.log.candidates) == len(ref["candidates"])
    for c, r in zip(fast.log.candidates, ref["candidates"]):
        assert ((c.tower, c.weight_type, c.layer), c.ratio, c.step) == (r["target"], r["ratio"], r["step"])
        for key in ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent"):
            assert getattr(c, key) == pytest.approx(r[key], abs=1e-5), (c, key)
    for s, r in zip(fast.log.steps, ref["steps"]):
        assert s.locoop_loss == pytest.approx(r["locoop_loss"], abs=1e-5)


@pytest.mark.parametrize("kw", [
    {"searcher": "setar-s"},
    {"searcher": "mis"},
    {"searcher": "les", "ratios": (0.0, 0.1, 0.25, 0.4)},
    {"searcher": "setar-s", "prune": "random", "seed": 3, "include_projection": True},
    {"searcher": "setar-s", "prune": "principal", "modality": "text", "weight_type": "W_v"},
])
def test_fast_search_selects_the_reference_plan_with_the_same_losses(tiny_clip, val_set, kw):
    images, labels, names = val_set
    before = {k: v.clone() for k, v in tiny_clip.model.state_dict().items()}
    cfg = SearchConfig(lam=0.3, top_k=3, batch_size=16, forward_batch_size=16, text_batch_size=4, **kw)
    fast = search(tiny_clip, images, labels, names, "a photo of a {}", cfg)
    for k, v in tiny_clip.model.state_dict().items():  # weights restored
        assert torch.equal(v, before[k]), k
    ref = reference_search(tiny_clip, images, labels, names, "a photo of a {}", cfg)
    _compare(fast, ref)
    assert any(e.ratio > 0 for e in fast.plan.entries)  # the search did select something
    assert fast.info["candidates_computed"] < len(ref["candidates"])  # ratio-0 candidates were not re-run


def test_search_result_files(tiny_clip, val_set, tmp_path):
    images, labels, names = val_set
    cfg = SearchConfig(lam=0.3, top_k=3, batch_size=16, ratios=(0.0, 0.2))
    res = search(tiny_clip, images, labels, names, "a photo of a {}", cfg)
    paths = res.save(tmp_path)
    plan = Plan.load(paths["plan"])
    assert plan.entries == res.plan.entries and plan.search["lambda"] == 0.3 and plan.search["searcher"] == "setar-s"
    with open(paths["steps_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "tower", "weight_type", "layer", "best_ratio", "locoop_loss", "loss_id", "loss_ood",
                             "acc", "ood_patch_percent"]
    assert len(rows) == 4 and float(rows[-1]["locoop_loss"]) == pytest.approx(res.best.locoop_loss)
    with open(paths["candidates_csv"]) as f:
        assert len(list(csv.DictReader(f))) == 8
    log = json.loads(paths["log_json"].read_text())
    assert len(log["candidates"]) == 8 and log["settings"]["n_images"] == 40
    # the step-0 ratio-0 candidate is the unmodified model's loss
    assert log["candidates"][0]["ratio"] == 0.0 and log["candidates"][0]["computed"] is True


def test_search_input_errors(tiny_clip, val_set):
    images, labels, names = val_set
    with pytest.raises(UserError):
        search(tiny_clip, images, labels[:5], names)
    with pytest.raises(UserError):
        search(tiny_clip, images, labels, None)


@pytest.mark.parametrize("name, size, lam, k, searcher", [
    ("test_swin_tiny", 64, 0.01, 7, "setar-s"),  # per-position logits, the paper's Swin lambda, K = 0.7 C
    ("test_resnet_tiny", 64, 0.0, 0, "setar-s"),  # ID loss only, as for ResNet-50
])
def test_fast_search_matches_the_reference_on_classifiers(name, size, lam, k, searcher):
    from oodbench.backbones import create_backbone

    bb = create_backbone(name, pretrained="random", seed=0)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(20, 3, size, size, generator=g)
    labels = torch.randint(0, 10, (20,), generator=g)
    cfg = SearchConfig(searcher=searcher, lam=lam, top_k=k, batch_size=8, forward_batch_size=20, ratios=(0.0, 0.1, 0.25, 0.4))
    fast = search(bb, images, labels, config=cfg)
    ref = reference_search(bb, images, labels, None, "", cfg)
    _compare(fast, ref)
    if lam == 0:
        assert all(c.locoop_loss == c.loss_id for c in fast.log.candidates)
    else:
        assert any(e.ratio > 0 for e in fast.plan.entries)


def test_fast_search_matches_the_reference_on_the_digits_model(digits_inputs):
    bb, images, labels, names, prompt = digits_inputs
    # the benchmark's settings (lambda 0.1, K 2, one aggregation batch); 3 of the 9 ratios to stay fast
    cfg = SearchConfig(lam=0.1, top_k=2, batch_size=512, forward_batch_size=120, ratios=(0.0, 0.2, 0.4))
    fast = search(bb, images, labels, names, prompt, cfg)
    ref = reference_search(bb, images, labels, names, prompt, cfg)
    _compare(fast, ref)
    assert fast.log.candidates[0].acc > 90  # the trained model classifies its val split
