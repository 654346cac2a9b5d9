"""ImageNet-1K benchmark in the SeTAR layout (the paper's main CLIP and Swin table).

ID test = ILSVRC2012 val (50,000), ID val = one train image per class (1,000, the SeTAR search split);
far-OOD = iNaturalist, SUN, Places (10,000 each), Texture (5,640). Class names: the CLIP-cleaned list of
MCM / SeTAR; prompt ``"a photo of a {}"``. Reference: X1AOX1A/SeTAR ``data/README.md``. The ID test, SUN, Places
and Texture splits carry SeTAR's official classification label lists (``classify/``, the paper's Table 7).
"""

from __future__ import annotations

from dataclasses import replace

from oodbench.datasets.base import BenchmarkSpec
from oodbench.datasets.fullspectrum_splits import IMAGENET_CSID
from oodbench.datasets.resources import CLASSIFY_DIR, read_classnames
from oodbench.datasets.setar_splits import IMAGENET_TEST, IMAGENET_VAL, LISTS, MOS_OOD, PROMPT
from oodbench.registry import register


@register("benchmarks", "imagenet1k", aliases=("imagenet", "in1k"))
def imagenet1k() -> BenchmarkSpec:
    """ImageNet-1K (SeTAR layout): ID test 50,000 / val 1,000; far-OOD iNaturalist, SUN, Places, Texture."""
    return BenchmarkSpec(
        name="imagenet1k",
        description="ImageNet-1K vs iNaturalist / SUN / Places / Texture (SeTAR, MCM protocol)",
        id_test=IMAGENET_TEST,
        id_val=IMAGENET_VAL,
        ood=MOS_OOD,
        class_names=read_classnames("imagenet1k"),
        prompt=PROMPT,
        family="imagenet",
        classify_labels={name: str(CLASSIFY_DIR / f"{stem}_test_label.tsv.gz") for name, stem in (
            (IMAGENET_TEST.name, "imagenet1k"), ("SUN", "sun"), ("Places", "places"), ("Texture", "texture"))},
        **LISTS,
    )


@register("benchmarks", "imagenet1k_fs", aliases=("imagenet1k_fsood", "imagenet-fs"))
def imagenet1k_fs() -> BenchmarkSpec:
    """ImageNet-1K (SeTAR layout), full-spectrum: ImageNet-V2, -R, -Sketch, -A scored as ID beside the ID test."""
    return replace(imagenet1k(), name="imagenet1k_fs", csid=IMAGENET_CSID,
                   description="ImageNet-1K (SeTAR splits) + ImageNet-V2 / -R / -Sketch / -A as ID vs iNaturalist / "
                               "SUN / Places / Texture (full-spectrum)")
