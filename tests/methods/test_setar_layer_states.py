"""The search's kept layer states: one forward instead of one per step, bounded by ``state_bytes``, with the losses
and the plan of the reference search; and the search log's record of the unavoidable work."""

import functools

import pytest
import torch
from reference_search import reference_search

from oodbench.backbones.clip_loading import clip_from_config
from oodbench.methods.setar import search as search_module
from oodbench.methods.setar.evaluator import FastEvaluator
from oodbench.methods.setar.search import SearchConfig, search

#: 4 + 4 blocks (the registered tiny CLIP has 2 + 2: too few for kept states to matter)
CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 4, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 4},
}
N_IMAGES, TOKENS, WIDTH = 12, 17, 64
STATE = N_IMAGES * TOKENS * WIDTH * 4  # bytes of one image-tower state
CHUNKS = 3  # 12 images in forward chunks of 5: every count is per chunk


@pytest.fixture(scope="module")
def clip4():
    return clip_from_config(CFG, "random", name="clip4", seed=2)


@pytest.fixture(scope="module")
def val12():
    g = torch.Generator().manual_seed(5)
    images = torch.randn(N_IMAGES, 3, 32, 32, generator=g)
    labels = torch.randint(0, 4, (N_IMAGES,), generator=g)
    return images, labels, ["cat", "dog", "car", "tree"]


class _BlockCounter:
    """Counts the blocks run to reach the state entering a searched block (``hidden`` / ``hidden_from``)."""

    def __init__(self, bb, monkeypatch):
        self.blocks = {"vision": 0, "text": 0}
        self.inside = False  # the backbone's hidden() may itself call hidden_from(): count once
        hidden, hidden_from = bb.hidden, bb.hidden_from

        def counted_hidden(tower, inputs, layer):
            self.blocks[tower] += layer
            self.inside = True
            try:
                return hidden(tower, inputs, layer)
            finally:
                self.inside = False

        def counted_from(tower, h, start, stop, inputs=None):
            if not self.inside:
                self.blocks[tower] += stop - start
            return hidden_from(tower, h, start, stop, inputs)

        monkeypatch.setattr(bb, "hidden", counted_hidden)
        monkeypatch.setattr(bb, "hidden_from", counted_from)


def _run(bb, val, monkeypatch, state_bytes, **kw):
    images, labels, names = val
    monkeypatch.setattr(search_module, "FastEvaluator", functools.partial(FastEvaluator, state_bytes=state_bytes))
    counter = _BlockCounter(bb, monkeypatch)
    cfg = SearchConfig(lam=0.3, top_k=2, batch_size=5, forward_batch_size=5, text_batch_size=3,
                       ratios=(0.0, 0.2, 0.4), **kw)
    result = search(bb, images, labels, names, "a photo of a {}", cfg)
    monkeypatch.undo()
    return result, counter.blocks, cfg


def _losses(result):
    return [(c.tower, c.layer, c.ratio, c.locoop_loss, c.loss_id, c.loss_ood, c.acc) for c in result.log.candidates]


@pytest.mark.parametrize("kw", [
    {"searcher": "setar-s"},
    {"searcher": "setar-s", "weight_type": "W_q", "include_projection": True},
    pytest.param({"searcher": "les"}, marks=pytest.mark.slow),
    pytest.param({"searcher": "mis"}, marks=pytest.mark.slow),
])
def test_kept_states_give_the_reference_search(clip4, val12, monkeypatch, kw):
    images, labels, names = val12
    kept, kept_blocks, cfg = _run(clip4, val12, monkeypatch, 1 << 30, **kw)
    none, none_blocks, _ = _run(clip4, val12, monkeypatch, 0, **kw)
    some, some_blocks, _ = _run(clip4, val12, monkeypatch, 2 * STATE, **kw)
    # the same arithmetic on the same states: identical losses and plans whatever is kept
    assert _losses(kept) == _losses(none) == _losses(some)
    assert kept.plan.entries == none.plan.entries == some.plan.entries
    ref = reference_search(clip4, images, labels, names, "a photo of a {}", cfg)
    assert [[e.tower, e.weight_type, e.layer, e.ratio] for e in kept.plan.entries] == ref["settings"]
    for c, r in zip(kept.log.candidates, ref["candidates"]):
        assert c.locoop_loss == pytest.approx(r["locoop_loss"], abs=1e-5)
        assert c.loss_ood == pytest.approx(r["loss_ood"], abs=1e-5)
    assert kept_blocks["vision"] <= some_blocks["vision"] <= none_blocks["vision"]
    if kw["searcher"] != "les":  # top -> bottom: the blocks below run once in all, not once per step
        proj = 1 if kw.get("include_projection") else 0
        assert kept_blocks["vision"] == CHUNKS * (3 + proj)
        assert none_blocks["vision"] == CHUNKS * (3 + 2 + 1 + 4 * proj)


def test_setar_s_with_every_state_kept_runs_the_blocks_below_once(clip4, val12, monkeypatch):
    _, blocks, _ = _run(clip4, val12, monkeypatch, 1 << 30)
    # one walk up to block 3 (states 1..3) for the image tower; the text tower, searched after, likewise
    assert blocks == {"vision": CHUNKS * 3, "text": 2 * 3}  # 4 prompts in text chunks of 3


def test_search_log_records_the_unavoidable_work(clip4, val12, monkeypatch):
    from oodbench.methods.setar.flops import loss_flops, text_flops, vision_flops

    result, _, cfg = _run(clip4, val12, monkeypatch, 1 << 30)
    eff = result.log.efficiency
    ids = [clip4.tokenize([f"a photo of a {c}" for c in val12[2][i:i + 3]]) for i in range(0, 4, 3)]
    loss = loss_flops(N_IMAGES, 16, 32, 4)
    expected = vision_flops(clip4, N_IMAGES, -1) + sum(text_flops(clip4, i, -1) for i in ids) + loss
    for c in result.log.candidates:
        if c.computed and c.removed_rank > 0:  # W_up: from the searched block's MLP half up
            tower = vision_flops(clip4, N_IMAGES, c.layer, True) if c.tower == "vision" else \
                sum(text_flops(clip4, i, c.layer, True) for i in ids)
            expected += tower + loss
    assert eff["unavoidable_flops"] == expected
    assert eff["achieved_flops_per_s"] == pytest.approx(expected / result.log.seconds)
    # every search times the model's own GEMMs (one image block's four linear products at the forward chunk)
    fc = clip4.visual.transformer.resblocks[0].mlp.c_fc
    rows = 5 * (16 + 1)  # forward chunks of 5 images, 16 patches + the class token
    assert eff["matmul_shapes"] == [[rows, fc.in_features, 3 * fc.in_features], [rows, fc.in_features, fc.in_features],
                                    [rows, fc.in_features, fc.out_features], [rows, fc.out_features, fc.in_features]]
    assert eff["matmul_flops_per_s"] > 0
    assert eff["matmul_fraction"] == pytest.approx(expected / result.log.seconds / eff["matmul_flops_per_s"])
    assert result.log.from_dict(result.log.to_dict()).efficiency == eff
