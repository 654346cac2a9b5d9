"""Covariate-shifted ImageNet-1K test sets for full-spectrum evaluation: ImageNet's classes under another image
distribution, scored *as ID* (``BenchmarkSpec.csid``).

* ImageNet-V2 and ImageNet-R: OpenOOD v1.5's own lists (``benchmark_imglist/imagenet/test_imagenet_{v2,r}.txt``,
  labels already in ImageNet-1K's index order) over ``images_largescale/imagenet_{v2,r}``, the csID sets of its
  ImageNet-1K full-spectrum benchmark (Zhang et al., "OpenOOD v1.5", 2023, and ``DATA_INFO['imagenet']['csid']``).
* ImageNet-Sketch and ImageNet-A are not part of OpenOOD; they are read from their original releases as
  ImageFolder trees of wnid folders, labelled by each wnid's index among ImageNet-1K's 1,000 wnids (the sorted
  wnid order of ILSVRC2012, the order of ``datasets/classnames/imagenet1k.txt``). ImageNet-A holds 200 of the
  wnids (``class_subset``).

Counts: ImageNet-V2 matched-frequency 10,000 (Recht et al., ICML 2019); ImageNet-R 30,000 images of 200 classes
(Hendrycks et al., ICCV 2021); ImageNet-Sketch 50,889 images of 1,000 classes (Wang et al., NeurIPS 2019);
ImageNet-A 7,500 images of 200 classes (Hendrycks et al., CVPR 2021).
"""

from __future__ import annotations

import json

from oodbench.benchmark import SplitSpec
from oodbench.datasets.openood_splits import IMGLIST_DIR
from oodbench.datasets.resources import LISTS_DIR

# ImageNet-1K's wnids in label order (sorted, as ILSVRC2012 and torchvision's ImageFolder order them), read from
# the shipped SeTAR val list, which holds one image of every class.
IMAGENET_WNIDS: tuple[str, ...] = tuple(sorted(json.loads((LISTS_DIR / "imagenet1k_val_data.json")
                                                          .read_text(encoding="utf-8"))))


def _openood(name: str, list_name: str, expected: int, folder: str, drive_id: str, what: str) -> SplitSpec:
    return SplitSpec(name, "images_largescale", format="imglist", list_file=f"{IMGLIST_DIR}/{list_name}",
                     expected=expected, group="id",
                     source=f"{what}; {folder}.zip (OpenOOD v1.5, Google Drive {drive_id}) extracted into "
                            f"DATA/images_largescale/{folder}")


IMAGENET_V2 = _openood("ImageNet-V2", "test_imagenet_v2.txt", 10_000, "imagenet_v2", "1akg2IiE22HcbvTBpwXQoD7tgfPCdkoho",
                       "ImageNet-V2 matched-frequency (Recht et al., ICML 2019)")
IMAGENET_R = _openood("ImageNet-R", "test_imagenet_r.txt", 30_000, "imagenet_r", "1EzjMN2gq-bVV7lg-MEAdeuBuz-7jbGYU",
                      "ImageNet-R, renditions of 200 classes (Hendrycks et al., ICCV 2021)")
IMAGENET_SKETCH = SplitSpec(
    "ImageNet-Sketch", "imagenet_sketch/sketch", expected=50_889, group="id", classes=IMAGENET_WNIDS,
    source="ImageNet-Sketch (Wang et al., NeurIPS 2019), ImageNet-Sketch.zip from github.com/HaohanWang/ImageNet-Sketch "
           "(or the Hugging Face dataset imagenet_sketch); its sketch/<wnid>/ folders into DATA/imagenet_sketch/sketch")
IMAGENET_A = SplitSpec(
    "ImageNet-A", "imagenet-a", expected=7_500, group="id", classes=IMAGENET_WNIDS, class_subset=True,
    source="ImageNet-A natural adversarial examples of 200 classes (Hendrycks et al., CVPR 2021), "
           "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar extracted into DATA (DATA/imagenet-a/<wnid>/)")

#: The covariate-shifted ID sets of ImageNet-1K, in the order they are reported.
IMAGENET_CSID = (IMAGENET_V2, IMAGENET_R, IMAGENET_SKETCH, IMAGENET_A)
