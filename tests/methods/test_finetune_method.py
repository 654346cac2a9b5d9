"""The registered fine-tuning methods end to end on a tiny CLIP: cache, Modification apply/restore, exports,
errors before any work, and the `oodbench finetune` command."""

import json

import numpy as np
import pytest
import torch

from oodbench.backbones import create_backbone
from oodbench.benchmark import BenchmarkSpec, ResolvedBenchmark, SplitSpec
from oodbench.cache import CacheRoot
from oodbench.data.sources import ArraySource
from oodbench.errors import UserError
from oodbench.method import MethodContext, method_class
from oodbench.methods.finetune import trainer as trainer_mod
from oodbench.methods.finetune.checkpoint import export_merged, load_tensors
from oodbench.methods.setar import Plan, PlanEntry

CLASSES = ("cat", "dog", "car", "tree", "boat")


def resolved(with_val=True):
    rng = np.random.RandomState(0)
    val = ArraySource("val", rng.randint(0, 256, (10, 32, 32, 3)).astype(np.uint8), np.arange(10) % 5)
    test = ArraySource("test", rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8), np.arange(4) % 5)
    split = lambda n: SplitSpec(n, n, format="array")  # noqa: E731
    spec = BenchmarkSpec(name="tiny", description="tiny", id_test=split("test"), id_val=split("val") if with_val else None,
                         ood=(), class_names=CLASSES, prompt="a photo of a {}")
    return ResolvedBenchmark(spec, id_test=test, id_val=val if with_val else None, ood={})


@pytest.fixture
def ctx(tmp_path):
    bb = create_backbone("test_clip_tiny", pretrained="random", seed=0)
    return MethodContext(backbone=bb, benchmark=resolved(), caches=CacheRoot(tmp_path / "cache"), seed=3, quiet=True)


def outputs(bb):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        o = bb.forward_from("vision", bb.hidden("vision", x, 0), 0)
    text = bb.shared_features({"text"}, list(CLASSES), "a photo of a {}")["text"]
    return o.global_, o.local, torch.from_numpy(text)


@pytest.fixture
def plan_file(tmp_path):
    return str(Plan([PlanEntry("vision", "W_up", 1, 0.25), PlanEntry("text", "W_up", 0, 0.25)]).save(tmp_path / "plan.json"))


def test_setar_ft_trains_caches_applies_and_restores(ctx, plan_file, monkeypatch, tmp_path):
    bb = ctx.backbone
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}
    before = outputs(bb)
    method = method_class("setar-ft")(plan_file=plan_file, epochs=2, batch_size=4, lr=0.05)
    method.check(ctx)
    mod = method.prepare(ctx)
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items())  # pristine after training
    folder = ctx.caches.checkpoints / mod.key
    for name in ("finetune.json", "loss_log.csv", "loss_log.json", "weights.safetensors", "adapters.safetensors",
                 "checkpoint.safetensors"):
        assert (folder / name).is_file(), name
    rec = mod.record
    assert rec["hash"] == mod.key and rec["steps"] == 2 * 3 and rec["train"]["seed"] == 3
    assert rec["trainable_params"] == 16 * (64 + 256) + 16 * (64 + 256)
    assert rec["plan"]["hash"] == Plan.load(plan_file).hash()
    assert len(json.loads((folder / "loss_log.json").read_text())["steps"]) == 6
    weights, _ = load_tensors(folder / "weights.safetensors")
    assert sorted(weights) == ["transformer.resblocks.0.mlp.c_fc.weight", "visual.transformer.resblocks.1.mlp.c_fc.weight"]

    mod.apply(bb)
    after = outputs(bb)
    assert not torch.allclose(after[0], before[0], atol=1e-4)  # trained weights differ from the original
    mod.restore()
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items())

    # merged export: the full state dict loads through --pretrained and gives the applied model's outputs
    path = export_merged(bb, weights, tmp_path / "out")
    reloaded = create_backbone("test_clip_tiny", pretrained=str(path))
    for a, b in zip(outputs(reloaded), after):
        assert torch.allclose(a, b, atol=1e-6)

    # a second prepare with the same ingredients reuses the cache: no training
    monkeypatch.setattr(trainer_mod, "train", lambda *a, **k: pytest.fail("trained again"))  # weights imports it on use
    mod2 = method_class("setar-ft")(plan_file=plan_file, epochs=2, batch_size=4, lr=0.05).prepare(ctx)
    assert mod2.key == mod.key and mod2.record == mod.record
    # any ingredient changes the key
    ctx.seed = 4
    assert method_class("setar-ft")(plan_file=plan_file, epochs=2, batch_size=4, lr=0.05).checkpoint_key(ctx) != mod.key


def test_lora_and_locoop_prepare(ctx, tmp_path):
    bb = ctx.backbone
    plain_text = bb.shared_features({"text"}, list(CLASSES), "a photo of a {}")["text"]
    lora = method_class("lora")(rank=2, alpha_mode="official-code", epochs=1, batch_size=5)
    lora.check(ctx)
    mod = lora.prepare(ctx)
    assert mod.record["lora"]["alpha"] == 8.0 and mod.record["lora"]["scaling"] == 4.0
    assert mod.record["trainable_params"] == 4 * 2 * (64 + 256)  # W_up of 2 vision + 2 text blocks

    locoop = method_class("locoop")(n_ctx=4, epochs=2, batch_size=5, lr=0.01)
    locoop.check(ctx)
    mod = locoop.prepare(ctx)
    assert mod.record["trainable_params"] == 4 * 64 and mod.record["steps"] == 4
    prompts = ctx.caches.checkpoints / mod.key / "prompts.safetensors"
    with mod.apply(bb):
        learned = bb.shared_features({"text"}, list(CLASSES), "a photo of a {}")["text"]
    assert not np.allclose(learned, plain_text, atol=1e-4)
    assert np.array_equal(bb.shared_features({"text"}, list(CLASSES), "a photo of a {}")["text"], plain_text)
    # --prompts FILE: no training, the same text features
    given = method_class("locoop")(prompts_file=str(prompts))
    given.check(ctx)
    mod2 = given.prepare(ctx)
    with mod2.apply(bb):
        assert np.allclose(bb.shared_features({"text"}, list(CLASSES), "a photo of a {}")["text"], learned, atol=1e-6)


def test_errors_before_any_work(ctx, tmp_path):
    with pytest.raises(UserError, match="top-K"):
        method_class("lora")(top_k=5).check(ctx)
    with pytest.raises(UserError, match="exceeds"):
        method_class("lora")(rank=100).check(ctx)
    with pytest.raises(UserError, match="unknown option"):
        method_class("lora")(bogus=1)
    with pytest.raises(UserError, match="epochs"):
        method_class("setar-ft")(epochs=0).check(ctx)
    no_val = MethodContext(backbone=ctx.backbone, benchmark=resolved(with_val=False), caches=ctx.caches)
    with pytest.raises(UserError, match="val"):
        method_class("locoop")().check(no_val)
    other = ctx.caches.root.parent / "other.safetensors"
    from oodbench.methods.finetune.checkpoint import save_prompts

    save_prompts(other, torch.zeros(4, 64), ["a", "b"], {"n_ctx": 4, "class_specific": False})
    with pytest.raises(UserError, match="learned for 2 classes"):
        method_class("locoop")(prompts_file=str(other)).check(ctx)
    assert not ctx.caches.checkpoints.exists()  # nothing was written


def test_digits_export_is_a_weights_folder(tmp_path):
    bb = create_backbone("digits_clip")
    name = "visual.transformer.resblocks.0.mlp.c_fc.weight"
    w = dict(bb.model.named_parameters())[name].detach() * 1.01
    folder = export_merged(bb, {name: w}, tmp_path)
    reloaded = create_backbone("digits_clip", pretrained=str(folder))
    state = reloaded.model.state_dict()
    assert torch.equal(state[name], w)
    assert all(torch.equal(v, state[k]) for k, v in bb.model.state_dict().items() if k != name)


def test_finetune_command(tmp_path):
    from oodbench.cli import main

    out = tmp_path / "ft"
    rc = main(["finetune", "--method", "lora", "--backbone", "test_clip_tiny", "--pretrained", "random",
               "--epochs", "1", "--train-batch-size", "60", "--lora-rank", "2", "--out", str(out), "-q",
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    rec = json.loads((out / "finetune.json").read_text())
    assert rec["name"] == "lora" and rec["steps"] == 2 and rec["train"]["seed"] == 5  # digits val: 120 images
    assert (out / "loss_log.csv").read_text().count("\n") == 3
    merged = create_backbone("test_clip_tiny", pretrained=str(out / "merged.safetensors"))
    w, _ = load_tensors(out / "weights.safetensors")
    for k, v in w.items():
        assert torch.equal(merged.model.state_dict()[k], v)
    assert main(["finetune", "--method", "setar", "-q"]) == 2  # not a training method


def test_shared_flags_of_run_reach_every_method_that_takes_them():
    """`--plan` (setar's flag) serves setar-ft, `--epochs` (one flag for every training method) serves lora; a
    flag no chosen method reads stays an error."""
    from oodbench.cli import build_parser
    from oodbench.cli.method_args import check_unused_options, method_options

    p = build_parser()
    args = p.parse_args(["run", "--method", "setar-ft", "--plan", "p.json", "--epochs", "2"])
    check_unused_options(args, ("none", "setar-ft"))
    assert method_options(("setar-ft",), args)["setar-ft"] == {"plan_file": "p.json", "epochs": 2}
    args = p.parse_args(["run", "--method", "lora", "--epochs", "3", "--lora-alpha-official"])
    check_unused_options(args, ("none", "lora"))
    assert method_options(("lora",), args)["lora"] == {"epochs": 3, "alpha_mode": "official-code"}
    with pytest.raises(UserError, match="--lora-rank is an option of method lora"):
        check_unused_options(p.parse_args(["run", "--method", "setar-ft", "--lora-rank", "3"]), ("none", "setar-ft"))
