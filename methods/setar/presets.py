"""SeTAR search hyperparameters per backbone and ID benchmark, as published.

Paper: Li et al., SeTAR, NeurIPS 2024, Table 10 (lambda, top-K) and Sec. 4.1. Original code: X1AOX1A/SeTAR
``configs/training_free/*/SeTAR.json`` (batch size 512, 384 for Swin; seed 5; candidates 0..0.40 by 0.05).
The ResNet-50 row follows the paper's classifier protocol: the ID loss only (lambda = 0; the batch size then
does not change the loss). The ``digits`` row is this project's choice for its embedded benchmark (6 classes).

A benchmark spec may carry its own table (``BenchmarkSpec.hparams``: family key -> ``{"lam", "topk",
"batch_size", "seed"}``); :func:`search_preset` prefers it, then this table, then a default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

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


#: (backbone family, benchmark family) -> preset
PRESETS: dict[tuple[str, str], Preset] = {
    ("clip-b16", "imagenet"): Preset(0.10, 300, 512, 5, "paper Table 10 (CLIP-B/16, ImageNet-1K)"),
    ("clip-b16", "voc"): Preset(0.05, 4, 512, 5, "paper Table 10 (CLIP-B/16, Pascal-VOC)"),
    ("clip-l14", "imagenet"): Preset(0.50, 300, 512, 5, "paper Table 10 (CLIP-L/14, ImageNet-1K)"),
    ("clip-l14", "voc"): Preset(0.30, 6, 512, 5, "paper Table 10 (CLIP-L/14, Pascal-VOC)"),
    ("swinv2-b", "imagenet"): Preset(0.01, 700, 384, 5, "paper Table 10 (Swin-V2-B, ImageNet-1K); batch 384 of the official config"),
    ("resnet50", "imagenet"): Preset(0.0, 0, 256, 5, "ID loss only (lambda 0), as the paper does for ResNet-50"),
    ("digits", "digits"): Preset(0.10, 2, 512, 5, "oodbench choice for the embedded digits benchmark (6 classes)"),
}

_BACKBONE_FAMILIES = (
    ("clip-b16", ("vit-b-16", "vit-b/16", "vitb16", "clip-vit-base-patch16", "clip-b16", "clip-vit-b16")),
    ("clip-l14", ("vit-l-14", "vit-l/14", "vitl14", "clip-vit-large-patch14", "clip-l14", "clip-vit-l14")),
    ("swinv2-b", ("swinv2",)),
    ("resnet50", ("resnet50", "resnet-50")),
    ("digits", ("digits",)),
)
_BENCHMARK_FAMILIES = (
    ("imagenet", ("imagenet", "in1k", "openood")),
    ("voc", ("voc", "pascal")),
    ("digits", ("digits",)),
)


def _family(name: str, table) -> str | None:
    key = name.lower().replace("_", "-")
    for family, needles in table:
        if any(n in key for n in needles):
            return family
    return None


def backbone_family(name: str) -> str | None:
    """``"clip-b16"``, ``"clip-l14"``, ``"swinv2-b"``, ``"resnet50"``, ``"digits"`` or None, from a backbone name."""
    return _family(name, _BACKBONE_FAMILIES)


def search_preset(backbone: str, benchmark: str, num_classes: int | None = None,
                  hparams: Mapping[str, Mapping[str, Any]] | None = None) -> Preset:
    """The (lambda, K, batch size, seed) for ``backbone`` on ``benchmark``.

    Args:
        backbone: backbone name (registered or open_clip/timm architecture), matched by family.
        benchmark: benchmark name, matched by family.
        num_classes: number of ID classes (for the default K).
        hparams: the benchmark spec's own table (``BenchmarkSpec.hparams``), consulted first: its entry for the
            backbone family, else its ``"default"`` entry.

    Unknown pairs fall back to CLIP-B/16's lambda = 0.10 with K = round(0.3 * C) (the proportion of CLIP-B's
    300 / 1000 and 4 / 14), or K = 300 when ``num_classes`` is not given.
    """
    fam_b = backbone_family(backbone)
    if hparams:
        entry = hparams.get(fam_b or "", hparams.get("default"))
        if entry is not None:
            return Preset(float(entry["lam"]), int(entry["topk"]), int(entry.get("batch_size", OFFICIAL_BATCH)),
                          int(entry.get("seed", DEFAULT_SEED)), f"benchmark {benchmark} settings for {fam_b or 'default'}")
    fam_d = _family(benchmark, _BENCHMARK_FAMILIES)
    if fam_b == "resnet50":
        return PRESETS[("resnet50", "imagenet")]
    if (fam_b, fam_d) in PRESETS:
        return PRESETS[(fam_b, fam_d)]
    if fam_b == "swinv2-b":
        return PRESETS[("swinv2-b", "imagenet")]
    k = max(1, round(0.3 * num_classes)) if num_classes else 300
    return Preset(0.10, k, OFFICIAL_BATCH, DEFAULT_SEED,
                  f"default (no published setting for {backbone} on {benchmark}): lambda 0.10, K = 0.3 x classes")
