"""Near-OOD benchmark: ImageNet-1K (SeTAR layout) against SSB-hard (OpenOOD's list, 49,000 images).

SeTAR does not evaluate SSB-hard; this pairs the paper's ID splits (and therefore its search split and
hyperparameters) with OpenOOD v1.5's semantic-shift near-OOD set, so that a SeTAR plan found on ImageNet-1K
can be scored on near-OOD data. Both layouts live side by side under one data root.
"""

from __future__ import annotations

from oodbench.datasets.base import BenchmarkSpec
from oodbench.datasets.openood_splits import LISTS_SOURCE, SSB_HARD
from oodbench.datasets.resources import read_classnames
from oodbench.datasets.setar_splits import IMAGENET_TEST, IMAGENET_VAL, LISTS, PROMPT
from oodbench.registry import register


@register("benchmarks", "ssb_hard", aliases=("imagenet1k_ssb_hard", "ssb-hard"))
def ssb_hard() -> BenchmarkSpec:
    """ImageNet-1K (SeTAR ID splits) vs near-OOD SSB-hard (49,000, OpenOOD imglist)."""
    return BenchmarkSpec(
        name="ssb_hard",
        description="ImageNet-1K (SeTAR ID splits) vs SSB-hard near-OOD (OpenOOD v1.5 list)",
        id_test=IMAGENET_TEST,
        id_val=IMAGENET_VAL,
        ood=(SSB_HARD,),
        class_names=read_classnames("imagenet1k"),
        prompt=PROMPT,
        family="imagenet",
        **LISTS,
        lists_source=LISTS_SOURCE,
    )
