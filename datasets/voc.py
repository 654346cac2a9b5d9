"""Pascal-VOC benchmark in the SeTAR layout (multi-object ID images, GL-MCM's ``ID_VOC_single``).

ID = 14 VOC classes in the GL-MCM order, split by the SeTAR authors into val 94 / test 906 (the official
lists ship with oodbench); OOD = iNaturalist, SUN, Places, Texture, ImageNet22K (18,335) and COCO (1,000), all
in full (GL-MCM samples 1,000 per set and has no Places). Reference: X1AOX1A/SeTAR ``data/README.md``,
``dataloaders.py::change_by_label``, ``utils/data_utils.py``.
"""

from __future__ import annotations

from oodbench.datasets.base import BenchmarkSpec, SplitSpec
from oodbench.datasets.resources import read_classnames
from oodbench.datasets.setar_splits import COCO, IMAGENET22K, LISTS, MOS_OOD, PROMPT
from oodbench.registry import register

_SOURCE = ("GL-MCM datasets.tar.gz (AtsuMiyai/GL-MCM, Google Drive 1he4jKi2BfyGT6rkcbFYlez7PbLMXTBMR), folder "
           "ID_VOC_single; the files "
           "named in the shipped {} go to {}/<class>/ (`oodbench data restore voc --from <ID_VOC_single>`)")


@register("benchmarks", "voc", aliases=("pascal-voc", "pascal_voc"))
def voc() -> BenchmarkSpec:
    """Pascal-VOC (SeTAR layout): 14 classes, ID val 94 / test 906; OOD the four ImageNet sets + ImageNet22K, COCO."""
    classes = read_classnames("voc")
    return BenchmarkSpec(
        name="voc",
        description="Pascal-VOC (14 classes) vs iNaturalist / SUN / Places / Texture / ImageNet22K / COCO (SeTAR)",
        id_test=SplitSpec("VOC test", "ID_VOC/test", format="jsonlist", list_file="pkg:voc_test_data.json",
                          expected=906, group="id", source=_SOURCE.format("voc_test_data.json", "ID_VOC/test"),
                          classes=classes),
        id_val=SplitSpec("VOC val", "ID_VOC/val", format="jsonlist", list_file="pkg:voc_val_data.json",
                         expected=94, group="id", source=_SOURCE.format("voc_val_data.json", "ID_VOC/val"),
                         classes=classes),
        ood=(*MOS_OOD, IMAGENET22K, COCO),
        class_names=classes,
        prompt=PROMPT,
        family="voc",
        **LISTS,
    )
