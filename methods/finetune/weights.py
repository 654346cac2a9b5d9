"""Fine-tuning of low-rank weight adapters (SeTAR+FT, LoRA): the shared training path.

Original code: X1AOX1A/SeTAR ``finetune.py`` (spec §10): the adapters train on the ID val split with the LoCoOp
loss; CLIP logits are ``logit_scale.exp() * cos`` of the image (global and value-path local) and the class
prompt embeddings (``outputs.logits_per_image`` / ``logits_per_image_local``), classifier logits are used as they
are. After training the adapters are merged (``merge_and_unload``) and the merged weights are what the evaluation
loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.method import MethodContext

from .augment import CLASSIFIER_AUGMENT, CLIP_AUGMENT, train_transform
from .method import FinetuneMethod
from .presets import loss_preset, weight_preset

if TYPE_CHECKING:  # pragma: no cover  (torch is imported when training, not for --help)
    from .adapters import AdapterSet
    from .trainer import TrainConfig


def weight_forward(backbone, adapters: AdapterSet, class_names: list[str], prompt: str):
    """``images -> (logits [B, C], local logits [B, P, C] | None)`` through the adapted backbone.

    CLIP: the text embeddings of ``prompt.format(c)`` are recomputed every step when the text tower has adapters
    (computed once otherwise); the image tower runs without autograd when it has none.
    """
    import torch

    from oodbench.methods.setar.loss import clip_logits, l2_normalize

    towers = adapters.towers()
    vision_grad = "vision" in towers
    if backbone.kind != "clip":
        def forward_classifier(images: torch.Tensor):
            with torch.set_grad_enabled(vision_grad and torch.is_grad_enabled()):
                out = backbone.forward_from("vision", backbone.hidden("vision", images, 0), 0)
            return out.global_, out.local
        return forward_classifier

    prompts = [prompt.format(c) for c in class_names]
    scale = backbone.logit_scale()
    fixed: dict[str, torch.Tensor] = {}

    def text_n() -> torch.Tensor:
        if "text" in towers:
            return l2_normalize(backbone.encode_text(prompts))
        if "t" not in fixed:
            with torch.no_grad():
                fixed["t"] = l2_normalize(backbone.encode_text(prompts))
        return fixed["t"]

    def forward_clip(images: torch.Tensor):
        t = text_n()
        with torch.set_grad_enabled(vision_grad and torch.is_grad_enabled()):
            out = backbone.forward_from("vision", backbone.hidden("vision", images, 0), 0)
        return clip_logits(out.global_, t, scale), clip_logits(out.local, t, scale) if out.local is not None else None

    return forward_clip


class WeightMethod(FinetuneMethod):
    """A fine-tuning method that trains low-rank terms on weights (subclasses build the :class:`AdapterSet`)."""

    backbone_kinds = ("clip", "classifier")

    def attach(self, ctx: MethodContext) -> AdapterSet:
        """Attach the adapters to ``ctx.backbone`` (pristine before the call)."""
        raise NotImplementedError

    def train_config(self, ctx: MethodContext) -> TrainConfig:
        from .trainer import TrainConfig

        preset = weight_preset(ctx.backbone)
        loss = loss_preset(ctx.backbone, ctx.benchmark.spec)
        o = self.options
        return TrainConfig(epochs=o.get("epochs", preset.epochs), lr=o.get("lr", preset.lr),
                           batch_size=o.get("batch_size", preset.batch_size), lam=o.get("lam", loss.lam),
                           top_k=o.get("top_k", loss.top_k), schedule="cosine", precision=o.get("precision", "fp32"),
                           seed=self.seed(ctx, preset.seed),
                           augment=preset.augment or (CLIP_AUGMENT if ctx.backbone.kind == "clip" else CLASSIFIER_AUGMENT))

    def train_into(self, ctx: MethodContext, cfg: TrainConfig, folder: Path) -> dict[str, Any]:
        from .checkpoint import save_tensors
        from .trainer import train

        bb, spec = ctx.backbone, ctx.benchmark.spec
        adapters = self.attach(ctx)
        try:
            n_trainable = adapters.num_trainable()
            ranks = adapters.ranks()
            forward = weight_forward(bb, adapters, list(spec.class_names), spec.prompt)
            meta = {"method": self.name}
            train_log = train(forward, adapters.parameters(), ctx.benchmark.id_val, train_transform(bb, cfg.augment),
                              cfg, bb.device, quiet=ctx.quiet, on_bad=ctx.on_bad, title=self.title(),
                              on_epoch_end=self.epoch_checkpointer(folder, adapters.state, meta), modules=[bb.model])
            merged = adapters.merged()
            factors = adapters.state()
        finally:
            adapters.remove()
        save_tensors(folder / "adapters.safetensors", factors, {"method": self.name, "ranks": ranks})
        save_tensors(folder / "weights.safetensors", merged, {"method": self.name})
        summary = self.write_log(folder, train_log)
        return {"trainable_params": n_trainable, "ranks": ranks, "modified": sorted(merged), **summary}

    def apply_fn(self, folder: Path):
        from .checkpoint import weights_modification_fn

        return weights_modification_fn(folder / "weights.safetensors")
