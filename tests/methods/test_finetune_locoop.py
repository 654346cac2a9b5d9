"""LoCoOp prompt learning: the learned-context text path, training only the context, prompts files, apply/undo."""

import numpy as np
import pytest
import torch

from oodbench.data.sources import ArraySource
from oodbench.errors import UserError
from oodbench.methods.finetune.checkpoint import load_prompts, save_prompts
from oodbench.methods.finetune.prompts import PromptLearner, prompt_texts, token_embedding
from oodbench.methods.finetune.trainer import TrainConfig, train
from oodbench.methods.locoop import prompts_apply_fn

CLASSES = ["cat", "dog", "car", "tree"]


def placeholder_ctx(bb, n, class_specific):
    """The token embeddings of the "X" placeholders themselves: the learner must then reproduce the plain prompt."""
    emb = token_embedding(bb)
    x_id = int(bb.tokenize(["X"])[0, 1])
    row = emb.weight[x_id].detach()
    shape = (len(CLASSES), n, row.shape[0]) if class_specific else (n, row.shape[0])
    return row.expand(*shape).clone()


@pytest.mark.parametrize("class_specific", [False, True])
def test_placeholder_context_reproduces_the_plain_prompt(tiny_clip, class_specific):
    bb = tiny_clip
    learner = PromptLearner(bb, CLASSES, n_ctx=6, class_specific=class_specific,
                            ctx=placeholder_ctx(bb, 6, class_specific))
    with torch.no_grad():
        got = learner.text_features(bb)
        want = bb.encode_text(prompt_texts(CLASSES, 6))
    assert prompt_texts(["cat"], 3) == ["X X X cat."]
    assert torch.allclose(got, want, atol=1e-5)
    # a different context gives different features (the context is really used)
    learner2 = PromptLearner(bb, CLASSES, n_ctx=6, class_specific=class_specific, seed=1)
    with torch.no_grad():
        assert not torch.allclose(learner2.text_features(bb), want, atol=1e-3)


def test_context_init_is_seeded_and_sized(tiny_clip):
    a = PromptLearner(tiny_clip, CLASSES, n_ctx=4, seed=3)
    b = PromptLearner(tiny_clip, CLASSES, n_ctx=4, seed=3)
    c = PromptLearner(tiny_clip, CLASSES, n_ctx=4, class_specific=True, seed=3)
    assert torch.equal(a.ctx, b.ctx) and tuple(a.ctx.shape) == (4, 64) and tuple(c.ctx.shape) == (4, 4, 64)
    assert 0.015 < float(a.ctx.detach().std()) < 0.025  # N(0, 0.02^2)


def test_context_that_does_not_fit_the_text_context_is_an_error(tiny_clip):
    # test_clip_tiny has a 16-token context: SOT + 13 ctx + "cat" + "." + EOT = 17
    with pytest.raises(UserError, match="fewer context tokens"):
        PromptLearner(tiny_clip, CLASSES, n_ctx=13)
    PromptLearner(tiny_clip, CLASSES, n_ctx=12)


def test_training_moves_only_the_context(tiny_clip):
    from oodbench.methods.setar.loss import clip_logits, l2_normalize

    bb = tiny_clip
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    learner = PromptLearner(bb, CLASSES, n_ctx=4, seed=0)
    ctx0 = learner.ctx.detach().clone()
    for p in bb.model.parameters():
        p.requires_grad_(False)
    rng = np.random.RandomState(0)
    src = ArraySource("val", rng.randint(0, 256, (8, 32, 32, 3)).astype(np.uint8), np.arange(8) % 4)

    def forward(x):
        with torch.no_grad():
            out = bb.forward_from("vision", bb.hidden("vision", x, 0), 0)
        t = l2_normalize(learner.text_features(bb))
        return clip_logits(out.global_, t, 100.0), clip_logits(out.local, t, 100.0)

    cfg = TrainConfig(epochs=3, lr=0.5, batch_size=8, lam=0.25, top_k=1, schedule="cosine-epoch", warmup_epochs=1)
    log = train(forward, [learner.ctx], src, bb.preprocess(), cfg, quiet=True)
    assert [r["lr"] for r in log.steps][0] == pytest.approx(1e-5)  # constant warm-up epoch
    assert not torch.allclose(learner.ctx, ctx0)
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items())


def test_prompts_file_and_apply_undo(tiny_clip, tmp_path):
    bb = tiny_clip
    learner = PromptLearner(bb, CLASSES, n_ctx=4, seed=2)
    path = save_prompts(tmp_path / "p.safetensors", learner.ctx, CLASSES, {"n_ctx": 4, "class_specific": False})
    ctx, meta = load_prompts(path)
    assert torch.equal(ctx, learner.ctx.detach()) and meta["class_names"] == CLASSES
    plain = bb.shared_features({"text", "logit_scale"}, CLASSES, "a photo of a {}")
    undo = prompts_apply_fn(path)(bb)
    try:
        patched = bb.shared_features({"text", "logit_scale"}, CLASSES, "a photo of a {}")
        with torch.no_grad():
            assert np.allclose(patched["text"], learner.text_features(bb).numpy(), atol=1e-6)
        assert patched["logit_scale"] == plain["logit_scale"]
        assert not np.allclose(patched["text"], plain["text"], atol=1e-3)
        with pytest.raises(UserError, match="learned for 4 classes"):
            bb.shared_features({"text"}, ["a", "b"], "{}")
    finally:
        undo()
    again = bb.shared_features({"text"}, CLASSES, "a photo of a {}")
    assert np.array_equal(again["text"], plain["text"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(UserError):
        load_prompts(tmp_path / "bad.safetensors")
