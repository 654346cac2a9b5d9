"""Splits of the SeTAR data layout (``<SET>/<split>/...``, read as ImageFolder trees) and SeTAR's search settings.

Layout and counts: X1AOX1A/SeTAR ``data/README.md`` and ``data/utils/check_data_structure.py``; OOD sets per ID
set: ``src/svd_ood/svd_ood/utils/data_utils.py``; search settings: ``configs/training_free/*/SeTAR.json`` and the
paper's Table 10 (Li et al., "SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation",
NeurIPS 2024). The OOD sets keep their images in one dummy class folder (``images/``) and are used in full.
"""

from __future__ import annotations

from oodbench.benchmark import SplitSpec
from oodbench.datasets.resources import LISTS_DIR

_MOS = ("MOS subset (Huang & Li, CVPR 2021), the set MCM and GL-MCM use: "
        "http://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset/{0}.tar.gz; move {0}/images to {1}/images")

IMAGENET_TEST = SplitSpec(
    "ImageNet-1K test", "ID_ImageNet1K/test", expected=50_000, group="id",
    source="ILSVRC2012 validation images (ILSVRC2012_img_val.tar, image-net.org) sorted into one folder per wnid "
           "(soumith/imagenetloader.torch valprep.sh, as SeTAR's restore_imagenet1k_test.sh)")
IMAGENET_VAL = SplitSpec(
    "ImageNet-1K val", "ID_ImageNet1K/val", format="jsonlist", list_file="pkg:imagenet1k_val_data.json",
    expected=1_000, group="id",
    source="one ILSVRC2012 *train* image per class chosen by SeTAR (their Google Drive folder, or `oodbench data "
           "restore imagenet1k --from <extracted ILSVRC2012_img_train>` copies the 1,000 listed files)")
INATURALIST = SplitSpec("iNaturalist", "OOD_iNaturalist/test", expected=10_000, group="far",
                        source=_MOS.format("iNaturalist", "OOD_iNaturalist/test"))
SUN = SplitSpec("SUN", "OOD_Sun/test", expected=10_000, group="far", source=_MOS.format("SUN", "OOD_Sun/test"))
PLACES = SplitSpec("Places", "OOD_Places/test", expected=10_000, group="far",
                   source=_MOS.format("Places", "OOD_Places/test"))
TEXTURE = SplitSpec(
    "Texture", "OOD_Texture/test", expected=5_640, group="far",
    source="DTD (Cimpoi et al., CVPR 2014) dtd-r1.0.1.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/dtd/; "
           "move dtd/images to OOD_Texture/test/images (all 47 class folders)")
IMAGENET22K = SplitSpec(
    "ImageNet22K", "OOD_ImageNet22K/test", expected=18_335, group="far",
    source="ImagenetOOD_for_COCO_VOC.tar (deeplearning-wisc/multi-label-ood, Google Drive folder "
           "1BGMRQz3eB_npaGD46HC6K_uzt105HPRy), folder ImageNet-22K "
           "(20 wnid folders) moved to OOD_ImageNet22K/test")
COCO = SplitSpec(
    "COCO", "OOD_COCO/test", expected=1_000, group="far",
    source="GL-MCM datasets.tar.gz (AtsuMiyai/GL-MCM, Google Drive 1he4jKi2BfyGT6rkcbFYlez7PbLMXTBMR), folder "
           "OOD_COCO/images moved to "
           "OOD_COCO/test/images")

MOS_OOD = (INATURALIST, SUN, PLACES, TEXTURE)

# The SeTAR search settings per (backbone family, ID set family) are one table: methods/setar/presets.py.
# Specs here declare their family ("imagenet", "voc") and the folder of the lists they ship.
LISTS = {"lists_dir": str(LISTS_DIR)}

# The prompt of the official code everywhere (no trailing period; the paper writes "a photo of a [CLASS].").
PROMPT = "a photo of a {}"
