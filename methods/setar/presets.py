"""SeTAR search hyperparameters: the one table, per backbone family × ID-set family.

Paper: Li et al., SeTAR, NeurIPS 2024, Table 10 (lambda, top-K) and Sec. 4.1. Original code: X1AOX1A/SeTAR
``configs/training_free/*/SeTAR.json`` (batch size 512, 384 for Swin; seed 5; candidates 0..0.40 by 0.05).
The ResNet-50 row follows the paper's classifier protocol: the ID loss only (lambda = 0; the batch size then
does not change the loss). The ``digits`` row is this project's choice for its embedded benchmark (6 classes,
the VOC-style values scaled; the whole 120-image val split is one batch).

Keys are *declared*, never guessed from names: each backbone states its ``family`` (``Backbone.family``) and
each benchmark spec its ``family`` (``BenchmarkSpec.family``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_RATIOS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
DEFAULT_SEED = 5
OFFICIAL_BATCH = 512


@dataclass(frozen=True)
class Preset:
    """LoCoOp weight ``lam``, patch top-K ``top_k``, aggregation ``batch_size`` and seed, and where they come from."""

    lam: float
    top_k: int
    batch_size: int = OFFICIAL_BATCH
    seed: int = DEFAULT_SEED
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


#: (backbone family, benchmark family) -> preset. ``None`` as benchmark family: any ID set.
PRESETS: dict[tuple[str, str | None], Preset] = {
    ("clip-b16", "imagenet"): Preset(0.10, 300, 512, 5, "paper Table 10 (CLIP-B/16, ImageNet-1K)"),
    ("clip-b16", "voc"): Preset(0.05, 4, 512, 5, "paper Table 10 (CLIP-B/16, Pascal-VOC)"),
    ("clip-l14", "imagenet"): Preset(0.50, 300, 512, 5, "paper Table 10 (CLIP-L/14, ImageNet-1K)"),
    ("clip-l14", "voc"): Preset(0.30, 6, 512, 5, "paper Table 10 (CLIP-L/14, Pascal-VOC)"),
    ("swinv2-b", None): Preset(0.01, 700, 384, 5, "paper Table 10 (Swin-V2-B, ImageNet-1K); batch 384 of the official config"),
    ("resnet50", None): Preset(0.0, 0, 256, 5, "ID loss only (lambda 0), as the paper does for ResNet-50"),
    ("digits", "digits"): Preset(0.10, 2, 120, 5, "oodbench choice for the embedded digits benchmark (6 classes)"),
}


def search_preset(backbone_family: str | None, benchmark_family: str | None, num_classes: int | None = None,
                  label: str = "") -> Preset:
    """The (lambda, K, batch size, seed) for a backbone family on an ID-set family.

    Args:
        backbone_family: ``Backbone.family`` (``"clip-b16"``, ``"clip-l14"``, ``"swinv2-b"``, ``"resnet50"``,
            ``"digits"`` or None).
        benchmark_family: ``BenchmarkSpec.family`` (``"imagenet"``, ``"voc"``, ``"digits"`` or ``""``).
        num_classes: number of ID classes (for the default K).
        label: how to name the pair in the default's ``source`` (e.g. ``"open_clip:RN50 on my-folders"``).

    Pairs without a published setting fall back to CLIP-B/16's lambda = 0.10 with K = round(0.3 * C) (the
    proportion of CLIP-B's 300 / 1000 and 4 / 14), or K = 300 when ``num_classes`` is not given.
    """
    for key in ((backbone_family, benchmark_family or None), (backbone_family, None)):
        if key in PRESETS:
            return PRESETS[key]  # type: ignore[index]
    k = max(1, round(0.3 * num_classes)) if num_classes else 300
    what = label or f"{backbone_family or 'this backbone'} on {benchmark_family or 'this benchmark'}"
    return Preset(0.10, k, OFFICIAL_BATCH, DEFAULT_SEED,
                  f"default (no published setting for {what}): lambda 0.10, K = 0.3 x classes")
