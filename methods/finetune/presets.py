"""Fine-tuning hyperparameters per backbone family, as published (and this project's choice for digits).

Paper: Li et al., SeTAR, NeurIPS 2024, Sec. 4.1, Table 11 (SeTAR+FT and LoRA: lr 0.01, 5 epochs, LoRA rank 32 /
64 / 112, alpha 16) and App. D (LoCoOp: top-K 200, lambda 0.25, lr 0.002, 50 epochs, 16 context tokens).
Original code: X1AOX1A/SeTAR ``configs/finetune/*`` (batch 100 / 20 / 50, seed 5, spec §10.3) and
AtsuMiyai/LoCoOp ``configs/trainers/LoCoOp/vit_b16_ep50.yaml`` (batch 32, one warm-up epoch at lr 1e-5).

The LoCoOp-loss lambda and K of SeTAR+FT and LoRA are the SeTAR search's (Table 11 repeats Table 10's ImageNet
values), so they come from :func:`oodbench.methods.setar.presets.search_preset` for the (backbone, ID set) pair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .augment import Augment

#: Training precisions (autocast of the forward pass; fp16 also keeps the trainable tensors in half precision).
PRECISIONS = ("fp32", "bf16", "fp16")

#: The LoRA alpha the official code actually applies: ``finetune.py`` never passes ``lora_alpha`` to the peft
#: config, so peft's default 8 is used (spec §10.4).
OFFICIAL_CODE_LORA_ALPHA = 8.0


@dataclass(frozen=True)
class WeightPreset:
    """SeTAR+FT / LoRA settings of one backbone family."""

    batch_size: int
    lr: float = 0.01
    epochs: int = 5
    lora_rank: int = 32
    lora_alpha: float = 16.0
    seed: int = 5
    source: str = ""
    augment: Augment | None = None  # None: the method's default for the backbone kind

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PromptPreset:
    """LoCoOp settings of one backbone family."""

    n_ctx: int = 16
    class_specific: bool = False
    lam: float = 0.25
    top_k: int = 200
    lr: float = 0.002
    epochs: int = 50
    batch_size: int = 32
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    source: str = ""
    augment: Augment | None = None

    def to_dict(self) -> dict:
        return asdict(self)


#: digits_clip's augmentation: CLIP's crop scale, no flip (a mirrored digit is another shape).
DIGITS_AUGMENT = Augment((0.9, 1.0), False, 0.0)

WEIGHT_PRESETS: dict[str, WeightPreset] = {
    "clip-b16": WeightPreset(100, lora_rank=32, source="paper Table 11 (CLIP-B/16); batch 100 of the official config"),
    "clip-l14": WeightPreset(20, lora_rank=64, source="paper Table 11 (CLIP-L/14); batch 20 of the official config"),
    "swinv2-b": WeightPreset(50, lora_rank=112, source="paper Table 11 (Swin-V2-B); batch 50 of the official config"),
    "digits": WeightPreset(12, lora_rank=8, augment=DIGITS_AUGMENT,
                           source="oodbench choice for digits_clip: 120 val images in 10 batches per epoch as "
                                  "CLIP-B's 1,000 in 10; LoRA rank 8; no horizontal flip (digits are not symmetric)"),
}
DEFAULT_WEIGHT_PRESET = WeightPreset(100, lora_rank=32, source="default (CLIP-B/16's Table 11 settings)")

PROMPT_PRESETS: dict[str, PromptPreset] = {
    "clip-b16": PromptPreset(source="LoCoOp paper / SeTAR App. D (CLIP-B/16)"),
    "clip-l14": PromptPreset(source="LoCoOp paper / SeTAR App. D (CLIP-L/14)"),
    "digits": PromptPreset(n_ctx=8, top_k=2, batch_size=12, augment=DIGITS_AUGMENT,
                           source="oodbench choice for digits_clip: 8 context tokens (16-token text context), "
                                  "K 2 of 6 classes, batch 12, no horizontal flip"),
}


def family_of(backbone) -> str | None:
    """The backbone's declared family (``Backbone.family``), None when it declares none."""
    return getattr(backbone, "family", None)


def weight_preset(backbone) -> WeightPreset:
    return WEIGHT_PRESETS.get(family_of(backbone) or "", DEFAULT_WEIGHT_PRESET)


def prompt_preset(backbone, num_classes: int) -> PromptPreset:
    """LoCoOp's settings; families without one keep LoCoOp's values with K = 20 % of the classes (200 / 1000)."""
    fam = family_of(backbone) or ""
    if fam in PROMPT_PRESETS:
        return PROMPT_PRESETS[fam]
    return PromptPreset(top_k=max(1, round(0.2 * num_classes)),
                        source=f"default (LoCoOp's settings, K = 20 % of {num_classes} classes)")


def loss_preset(backbone, spec):
    """(lambda, K) of the LoCoOp loss for SeTAR+FT / LoRA: the SeTAR search preset of (backbone, ID set)."""
    from oodbench.methods.setar.presets import search_preset

    return search_preset(family_of(backbone), getattr(spec, "family", ""), len(spec.class_names),
                         label=f"{backbone.name} on {spec.name}")
