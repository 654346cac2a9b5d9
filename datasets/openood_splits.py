"""Splits of the OpenOOD v1.5 data layout: image lists ``benchmark_imglist/imagenet/*.txt`` (``path label`` per
line, OOD label -1) over images in ``images_largescale/`` (``images_classic/`` for Textures).

Reference: Jingkang50/OpenOOD ``openood/evaluation_api/datasets.py`` (``DATA_INFO['imagenet']``, download ids),
Zhang et al., "OpenOOD v1.5: Enhanced Benchmark for Out-of-Distribution Detection", 2023. Counts are those of
OpenOOD's lists as documented by pytorch-ood and the OpenOOD v1.5 paper; NINCO's 5,879 is its authors' count
(Bitterwolf et al., ICML 2023), and Textures is OpenOOD's filtered DTD (5,160 of DTD's 5,640 images).

Checksums: OpenOOD publishes none, and its lists are only distributed inside ``benchmark_imglist.zip`` (re-issued
after the v1.5 tag), so no SHA-256 is pinned here (``SplitSpec.list_sha256`` is None). The SHA-256 of each list a
run reads is recorded in the run (``extra.data.splits[<split>].list_sha256``), so two results computed on
different lists can be told apart, and ``oodbench data verify`` prints it.
"""

from __future__ import annotations

from oodbench.datasets.base import SplitSpec

IMGLIST_DIR = "benchmark_imglist/imagenet"
_LISTS = IMGLIST_DIR
# The lists themselves: benchmark_imglist.zip (Google Drive 1lI1j0_fDDvjIt9JlWAw09X8ks-yrR_H1) extracted into DATA;
# OpenOOD's scripts/download/download.py fetches lists and images.
LISTS_SOURCE = "benchmark_imglist.zip (OpenOOD v1.5, Google Drive 1lI1j0_fDDvjIt9JlWAw09X8ks-yrR_H1) extracted into DATA"


def _src(zip_name: str, drive_id: str, folder: str) -> str:
    return f"{zip_name} (OpenOOD v1.5, Google Drive {drive_id}) extracted into DATA/{folder}"


def _ood(name: str, list_name: str, expected: int | None, group: str, source: str, folder: str = "images_largescale"):
    return SplitSpec(name, folder, format="imglist", list_file=f"{_LISTS}/{list_name}", expected=expected,
                     group=group, source=source)


_IMAGENET = _src("imagenet_1k.zip", "1i1ipLDFARR-JZ9argXd2-0a6DXwVhXEj", "images_largescale/imagenet_1k")

OPENOOD_ID_TEST = SplitSpec("ImageNet-1K test (OpenOOD)", "images_largescale", format="imglist",
                            list_file=f"{_LISTS}/test_imagenet.txt", expected=45_000, group="id",
                            source=f"ILSVRC2012 val images minus OpenOOD's ID val; {_IMAGENET}")
OPENOOD_ID_VAL = SplitSpec("ImageNet-1K val (OpenOOD)", "images_largescale", format="imglist",
                           list_file=f"{_LISTS}/val_imagenet.txt", expected=5_000, group="id",
                           source=f"5 ILSVRC2012 val images per class held out by OpenOOD; {_IMAGENET}")

SSB_HARD = _ood("ssb_hard", "test_ssb_hard.txt", 49_000, "near",
                "SSB-hard (Vaze et al., ICLR 2022), ImageNet-21K classes semantically close to ImageNet-1K; "
                + _src("ssb_hard.zip", "1PzkA-WGG8Z18h0ooL_pDdz9cO-DCIouE", "images_largescale/ssb_hard"))
NINCO = _ood("ninco", "test_ninco.txt", 5_879, "near",
             "NINCO (Bitterwolf et al., ICML 2023), OOD classes checked free of ImageNet-1K objects; "
             + _src("ninco.zip", "1Z82cmvIB0eghTehxOGP5VTdLt7OD3nk6", "images_largescale/ninco"))
INATURALIST = _ood("inaturalist", "test_inaturalist.txt", 10_000, "far",
                   "iNaturalist MOS subset; " + _src("inaturalist.zip", "1zfLfMvoUD0CUlKNnkk7LgxZZBnTBipdj",
                                                     "images_largescale/inaturalist"))
TEXTURES = _ood("textures", "test_textures.txt", 5_160, "far",
                "DTD textures as filtered by OpenOOD; " + _src("texture.zip", "1OSz1m3hHfVWbRdmMwKbUzoU8Hg9UKcam",
                                                               "images_classic/texture"),
                folder="images_classic")
_OPENIMAGE = _src("openimage_o.zip", "1VUFXnB_z70uHfdgJG2E_pjYOcEgqM7tE", "images_largescale/openimage_o")
OPENIMAGE_O = _ood("openimage_o", "test_openimage_o.txt", 15_869, "far",
                   "OpenImage-O (Wang et al., CVPR 2022, ViM), filtered OpenImages-V3 test images; " + _OPENIMAGE)
OPENIMAGE_O_VAL = _ood("openimage_o (val)", "val_openimage_o.txt", 1_763, "far",
                       "OpenImage-O validation part, OpenOOD's OOD-val split for hyperparameter search; " + _OPENIMAGE)
