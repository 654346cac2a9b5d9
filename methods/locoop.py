"""``locoop``: LoCoOp prompt learning on CLIP backbones — the prompt-learning baseline of SeTAR's Table 2.

Papers: Miyai et al., "LoCoOp: Few-Shot Out-of-Distribution Detection via Prompt Learning", NeurIPS 2023; Li et
al., SeTAR, NeurIPS 2024, App. D (top-K 200, lambda 0.25, lr 0.002, 50 epochs, prompt "X X ... X [CLASS]", 1-shot
ImageNet val data, 3 seeds). Original code: AtsuMiyai/LoCoOp ``trainers/locoop.py`` (CoOp prompt learner with 16
shared context vectors, class token at the end; the loss CE + lambda * (-entropy of the OOD patches), the same
loss module the SeTAR search uses here) and its ``vit_b16_ep50`` config (SGD, momentum 0.9, weight decay 5e-4,
batch 32, cosine per epoch after one warm-up epoch at lr 1e-5, random-resized-crop + flip) run by Dassl.pytorch.

Defaults follow the official run, not only the paper's text: the warm-up epoch at 1e-5, then the cosine from the
full lr (``CosineAnnealingLR(T_max = 50)`` behind Dassl's ``ConstantWarmupScheduler``, so epoch e >= 1 runs at
``0.5 lr (1 + cos(pi (e - 1) / 50))``); the last incomplete batch of each epoch is dropped (Dassl's train loader,
when the set holds at least one batch); fp16 training (``PREC: fp16``) on CUDA. On a CPU the default is fp32 (half
matmuls there are slow or missing; the record says so under ``precision_note``); ``--train-precision`` overrides
both.

The learned context is saved as ``prompts.safetensors`` (class names and settings in its metadata). With
``--prompts FILE`` the method trains nothing and evaluates that file. Either way the Modification makes the
backbone's class text features (``text``, hence ``logits``, MCM, GL-MCM, Energy, ...) use the learned context;
NegLabel's negative labels are still encoded with plain prompts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.errors import UserError
from oodbench.hashing import hash_file
from oodbench.method import MethodContext, Modification
from oodbench.options import at_least
from oodbench.registry import register

from .finetune.augment import LOCOOP_AUGMENT, train_transform
from .finetune.method import TRAIN_OPTIONS, FinetuneMethod, add_flag
from .finetune.presets import prompt_preset

if TYPE_CHECKING:  # pragma: no cover  (torch is imported when training or evaluating, not for --help)
    import torch

    from .finetune.trainer import TrainConfig

PROMPTS_FILE = "prompts.safetensors"


@register("methods", "locoop")
class LocoopMethod(FinetuneMethod):
    """LoCoOp: learn 16 shared prompt context vectors with the LoCoOp loss (CLIP; or --prompts FILE)."""

    display_name = "LoCoOp"
    # the conformance checks run on the tiny test CLIP, whose text context holds 16 tokens
    conformance_options = {"n_ctx": 4, "epochs": 1}
    backbone_kinds = ("clip",)
    produces = "prompts"
    option_names = (*TRAIN_OPTIONS, "n_ctx", "class_specific", "prompts_file")

    @classmethod
    def own_words(cls, record: dict[str, Any]) -> str:
        """``16 context tokens, shared`` (or ``class-specific``; a prompts file says so)."""
        prompts = record.get("prompts") or {}
        if "n_ctx" not in prompts:
            return "prompts file" if record.get("prompts_file") else ""
        return f"{prompts['n_ctx']} context tokens, " + ("class-specific" if prompts.get("class_specific") else "shared")

    @classmethod
    def add_own_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--n-ctx", "locoop_n_ctx", type=at_least(1), metavar="N",
                 help="LoCoOp context tokens (default 16; 8 for digits_clip's 16-token text context)")
        add_flag(parser, "--class-specific", "locoop_class_specific", action="store_const", const=True,
                 help="one context per class (CoOp's CSC) instead of LoCoOp's default shared context")
        add_flag(parser, "--prompts", "locoop_prompts", metavar="FILE",
                 help="evaluate learned prompts from this file (written by `oodbench finetune --method locoop`)")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        opts = super().options_from_args(args)
        for opt, dest in (("n_ctx", "locoop_n_ctx"), ("class_specific", "locoop_class_specific"),
                          ("prompts_file", "locoop_prompts")):
            if getattr(args, dest, None) is not None:
                opts[opt] = getattr(args, dest)
        return opts

    # ---------------------------------------------------------------------------------- settings
    def train_config(self, ctx: MethodContext) -> TrainConfig:
        from .finetune.trainer import TrainConfig

        p = prompt_preset(ctx.backbone, len(ctx.benchmark.spec.class_names))
        o = self.options
        return TrainConfig(epochs=o.get("epochs", p.epochs), lr=o.get("lr", p.lr),
                           batch_size=o.get("batch_size", p.batch_size), lam=o.get("lam", p.lam),
                           top_k=o.get("top_k", p.top_k), schedule="cosine-epoch", drop_last=True,
                           warmup_epochs=p.warmup_epochs, warmup_lr=p.warmup_lr,
                           precision=o.get("precision", official_precision(ctx.backbone.device)),
                           seed=self.seed(ctx, 5), augment=p.augment or LOCOOP_AUGMENT)

    def prompt_settings(self, ctx: MethodContext) -> dict[str, Any]:
        p = prompt_preset(ctx.backbone, len(ctx.benchmark.spec.class_names))
        return {"n_ctx": int(self.options.get("n_ctx", p.n_ctx)),
                "class_specific": bool(self.options.get("class_specific", p.class_specific)), "preset": p.source}

    def own_ingredients(self, ctx: MethodContext) -> dict[str, Any]:
        s = self.prompt_settings(ctx)
        return {"prompts": {"n_ctx": s["n_ctx"], "class_specific": s["class_specific"]}}

    # -------------------------------------------------------------------------------------- contract
    def check(self, ctx: MethodContext) -> None:
        from .finetune.checkpoint import load_prompts
        from .finetune.prompts import PromptLearner

        file = self.options.get("prompts_file")
        if file:
            if ctx.backbone.kind not in self.backbone_kinds:
                super(FinetuneMethod, self).check(ctx)
            ctx_t, meta = load_prompts(file)
            _check_classes(meta, ctx.benchmark.spec.class_names, file)
            PromptLearner(ctx.backbone, meta["class_names"], meta["n_ctx"], meta["class_specific"], ctx=ctx_t)
            return
        super().check(ctx)
        s = self.prompt_settings(ctx)
        PromptLearner(ctx.backbone, list(ctx.benchmark.spec.class_names), s["n_ctx"], s["class_specific"])

    def prepare(self, ctx: MethodContext) -> Modification:
        file = self.options.get("prompts_file")
        if not file:
            return super().prepare(ctx)
        from .finetune.checkpoint import load_prompts

        _, meta = load_prompts(file)
        _check_classes(meta, ctx.benchmark.spec.class_names, file)
        key = f"prompts-{hash_file(file, 20)}"
        record = {"name": self.name, "hash": key, "display_name": self.title(), "prompts_file": str(file),
                  **{k: meta.get(k) for k in ("n_ctx", "class_specific", "train", "backbone")}}
        return Modification(method=self.name, key=key, record=record, apply_fn=prompts_apply_fn(Path(file)))

    def train_into(self, ctx: MethodContext, cfg: TrainConfig, folder: Path) -> dict[str, Any]:
        import torch

        from oodbench.methods.setar.loss import clip_logits, l2_normalize

        from .finetune.checkpoint import save_prompts
        from .finetune.prompts import PromptLearner
        from .finetune.trainer import train

        bb, spec = ctx.backbone, ctx.benchmark.spec
        s = self.prompt_settings(ctx)
        learner = PromptLearner(bb, list(spec.class_names), s["n_ctx"], s["class_specific"], seed=cfg.seed)
        flags = {n: p.requires_grad for n, p in bb.model.named_parameters()}
        for p in bb.model.parameters():
            p.requires_grad_(False)
        scale = bb.logit_scale()

        def forward(images: torch.Tensor):
            with torch.no_grad():
                out = bb.forward_from("vision", bb.hidden("vision", images, 0), 0)
            t = l2_normalize(learner.text_features(bb))
            return clip_logits(out.global_, t, scale), clip_logits(out.local, t, scale)

        meta = {"n_ctx": s["n_ctx"], "class_specific": s["class_specific"], "train": cfg.to_dict(),
                "backbone": {"name": bb.name, "weights_hash": bb.weights_hash()}}

        try:
            train_log = train(forward, [learner.ctx], ctx.benchmark.id_val, train_transform(bb, cfg.augment), cfg,
                              bb.device, quiet=ctx.quiet, on_bad=ctx.on_bad, title=self.title(),
                              on_epoch_end=self.epoch_checkpointer(folder, lambda: {"ctx": learner.ctx}, meta),
                              modules=[bb.model])
        finally:
            for n, p in bb.model.named_parameters():
                p.requires_grad_(flags[n])
        save_prompts(folder / PROMPTS_FILE, learner.ctx, list(spec.class_names), meta)
        summary = self.write_log(folder, train_log)
        note = {}
        if "precision" not in self.options and cfg.precision != "fp16":
            note = {"precision_note": f"official LoCoOp trains in fp16; {cfg.precision} here on "
                                      f"{bb.device} (fp16 is the default on CUDA only)"}
        return {"prompts": {k: s[k] for k in ("n_ctx", "class_specific", "preset")},
                "trainable_params": int(learner.ctx.numel()), **note, **summary}

    def apply_fn(self, folder: Path):
        return prompts_apply_fn(folder / PROMPTS_FILE)


def official_precision(device) -> str:
    """LoCoOp's default training precision: the official fp16 on CUDA, fp32 elsewhere."""
    return "fp16" if str(device).startswith("cuda") else "fp32"


def _check_classes(meta: dict, class_names, file) -> None:
    learned = [str(c) for c in meta.get("class_names", [])]
    if learned != [str(c) for c in class_names]:
        raise UserError(f"{file}: its prompts were learned for {len(learned)} classes ({', '.join(learned[:3])}, ...), "
                        f"not this benchmark's {len(class_names)} ({', '.join(map(str, list(class_names)[:3]))}, ...)")


def prompts_apply_fn(path: Path):
    """``apply_fn`` making ``backbone.shared_features`` return text features of the learned prompts; undo restores."""

    def apply(backbone):
        import numpy as np
        import torch

        from oodbench.backbones.base import to_numpy

        from .finetune.checkpoint import load_prompts
        from .finetune.prompts import PromptLearner

        ctx_t, meta = load_prompts(path)
        learner = PromptLearner(backbone, meta["class_names"], meta["n_ctx"], meta["class_specific"], ctx=ctx_t)
        original = backbone.shared_features

        def shared_features(names, class_names, prompt):
            names = set(names)
            rest = names - {"text"}
            out = dict(original(rest, class_names, prompt)) if rest else {}
            if "text" in names:
                _check_classes(meta, class_names, path)
                with torch.no_grad():
                    out["text"] = to_numpy(learner.text_features(backbone)).astype(np.float32)
            return out

        backbone.shared_features = shared_features

        def undo() -> None:
            if backbone.__dict__.get("shared_features") is shared_features:
                del backbone.__dict__["shared_features"]

        return undo

    return apply
