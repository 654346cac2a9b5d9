"""OpenOOD v1.5 ImageNet-1K benchmark: its own ID splits, near-OOD SSB-hard + NINCO, far-OOD iNaturalist,
Textures, OpenImage-O, and OpenImage-O val as the OOD-val split for hyperparameter search (APS); and its
full-spectrum form (``openood_imagenet1k_fs``), which adds covariate-shifted ID sets scored as ID.

Reference: Jingkang50/OpenOOD ``openood/evaluation_api/datasets.py::DATA_INFO['imagenet']``. Split names are
OpenOOD's, so its results can be compared set by set. Deviation: postprocessors that need ID statistics fit on
the ID val list (5,000 images), whereas OpenOOD fits KNN and DICE on the 1.28M-image ImageNet train list.
"""

from __future__ import annotations

from dataclasses import replace

from oodbench.datasets.base import BenchmarkSpec
from oodbench.datasets.fullspectrum_splits import IMAGENET_CSID
from oodbench.datasets.openood_splits import (INATURALIST, LISTS_SOURCE, NINCO, OPENIMAGE_O, OPENIMAGE_O_VAL,
                                              OPENOOD_ID_TEST, OPENOOD_ID_VAL, SSB_HARD, TEXTURES)
from oodbench.datasets.resources import read_classnames
from oodbench.datasets.setar_splits import LISTS, PROMPT
from oodbench.registry import register


@register("benchmarks", "openood_imagenet1k", aliases=("openood_imagenet", "openood-imagenet1k"))
def openood_imagenet1k() -> BenchmarkSpec:
    """OpenOOD v1.5 ImageNet-1K: near SSB-hard, NINCO; far iNaturalist, Textures, OpenImage-O; OOD-val OpenImage-O val."""
    return BenchmarkSpec(
        name="openood_imagenet1k",
        description="OpenOOD v1.5 ImageNet-1K: near SSB-hard / NINCO, far iNaturalist / Textures / OpenImage-O",
        id_test=OPENOOD_ID_TEST,
        id_val=OPENOOD_ID_VAL,
        ood=(SSB_HARD, NINCO, INATURALIST, TEXTURES, OPENIMAGE_O),
        ood_val=(OPENIMAGE_O_VAL,),
        class_names=read_classnames("imagenet1k"),
        prompt=PROMPT,
        family="imagenet",
        **LISTS,
        lists_source=LISTS_SOURCE,
    )


@register("benchmarks", "openood_imagenet1k_fs", aliases=("openood_imagenet1k_fsood", "openood-imagenet1k-fs"))
def openood_imagenet1k_fs() -> BenchmarkSpec:
    """OpenOOD v1.5 ImageNet-1K, full-spectrum: the same OOD sets; ImageNet-V2, -R, -Sketch, -A scored as ID."""
    return replace(openood_imagenet1k(), name="openood_imagenet1k_fs", csid=IMAGENET_CSID,
                   description="OpenOOD v1.5 ImageNet-1K, full-spectrum: ID test + ImageNet-V2 / -R / -Sketch / -A "
                               "as ID vs near SSB-hard / NINCO, far iNaturalist / Textures / OpenImage-O")
