"""NegLabel's main table as a paper plugin: the worked example of adding a paper (README, "Adding a paper").

Jiang et al., *Negative Label Guided OOD Detection with Pretrained Vision-Language Models*, ICLR 2024, Table 1:
ImageNet-1K as ID (the 50,000 validation images), iNaturalist, SUN, Places and Textures as OOD (the MOS subsets),
CLIP ViT-B/16, zero-shot. oodbench computes two of its rows: MCM and NegLabel (10,000 mined negative labels, 100
groups). Their published numbers are package data (``data/table01.csv``, with where they were checked).

What fills the table: two stored runs on the ``imagenet1k`` benchmark with ``clip_vit_b16`` and the vanilla model
(``--method none``), one per score (``--post mcm``, ``--post neglabel``) at the scores' defaults; the same runs fill
the SeTAR tables' vanilla CLIP-B/16 ImageNet-1K cells, so one store fills both papers.
"""

from __future__ import annotations

from oodbench.paper import Cell, Experiment, Paper, RunSpec, TableSpec
from oodbench.registry import register

#: Our OOD set names (the ``imagenet1k`` benchmark) -> the paper's column labels.
COLUMNS = {"iNaturalist": "iNaturalist", "SUN": "SUN", "Places": "Places", "Texture": "Textures"}
#: Row label -> the score that computes it.
ROWS = {"MCM": "mcm", "NegLabel": "neglabel"}
BENCHMARK, BACKBONE = "imagenet1k", "clip_vit_b16"


def main_table() -> TableSpec:
    cells = []
    for label, post in ROWS.items():
        runs = (RunSpec.make(BENCHMARK, BACKBONE, post),)
        for ours, printed in [*COLUMNS.items(), ("Average", "Average")]:
            source = "average" if ours == "Average" else ours
            for metric in ("FPR95", "AUROC"):
                cells.append(Cell(("ImageNet-1K", label), ours, metric, runs, source, paper_row=label,
                                  paper_column=printed))
    return TableSpec("table01_zero_shot", "Zero-shot OOD detection, ImageNet-1K (ID), CLIP ViT-B/16",
                     ("ID set", "Method"), tuple(cells), ("neglabel", 1),
                     "CLIP ViT-B/16, zero-shot, every score at its defaults (NegLabel: 10,000 negative labels mined "
                     "from the shipped WordNet corpus, 100 groups). Values x100, 2 decimals. FPR95 lower is better, "
                     "AUROC higher is better; Average = plain mean over the four OOD sets.",
                     ("Our column Texture is the paper's Textures (the same DTD images).",))


@register("papers", "neglabel")
class NegLabelPaper(Paper):
    """NegLabel (Jiang et al., ICLR 2024), Table 1: zero-shot MCM and NegLabel, CLIP ViT-B/16, ImageNet-1K."""

    title = "NegLabel: Negative Label Guided OOD Detection with Pretrained Vision-Language Models (ICLR 2024)"
    version = "neglabel"
    published_data = "oodbench.papers.neglabel"
    published_dir = "data"

    def experiments(self, variant: str = "published") -> list[Experiment]:
        self.check_variant(variant)
        return [Experiment("table1", "Zero-shot OOD detection on ImageNet-1K (NegLabel, Table 1)", (main_table(),))]

    def table_reference(self, spec: TableSpec) -> str:
        return f"Paper: NegLabel (Jiang et al., ICLR 2024), Table {spec.paper[1]}."
