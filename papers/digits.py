"""The digits edition as a paper plugin: the analogues of the SeTAR paper's tables and figures on the embedded
digits benchmark (``digits_clip``, offline, seconds on a CPU), written to ``results/digits``.

It has no published numbers (no "paper vs ours" view); ``oodbench tables --paper digits`` and the older spelling
``oodbench tables --benchmark digits`` regenerate it.
"""

from __future__ import annotations

from oodbench.paper import METRICS, Cell, Condition, Experiment, IdSet, Paper, TableSpec, detail_cells, \
    ood_sets_of, score_label, summary_cells
from oodbench.papers.setar.experiments import (SEEDS, _conventions, _datasets_experiment, _loss_figure,
                                               _plan_figure, _sensitivity, _weight_types)
from oodbench.registry import register

DIGITS_LAMBDAS = (0.01, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
DIGITS_TOPK = (0, 1, 2, 3, 4, 5)
#: Scores of the digits "beyond the paper" table: the paper's two and the negative-label scores after it.
BEYOND_SCORES = ("mcm", "glmcm", "neglabel", "csp", "adaneg")


def digits_experiments() -> list[Experiment]:
    """The analogous tables and figures on the embedded digits benchmark (``digits_clip``)."""
    bench, bb = "digits", "digits_clip"
    ids = [IdSet("Digits 0-5", bench, ood_sets_of(bench))]
    cols = ids[0].ood_sets
    conv = _conventions()
    exps: list[Experiment] = []

    conds = [Condition("Vanilla"), Condition("SeTAR", "setar")]
    exps.append(Experiment("table1", "Training-free SeTAR vs. vanilla (digits)", (
        TableSpec("table1", "Training-free SeTAR vs. vanilla (digits_clip, Table 1 analogue)",
                  ("ID set", "Score", "Method"), detail_cells(ids, ("mcm", "glmcm"), conds, bb, cols), None,
                  "digits_clip; SeTAR-S with the digits preset (lambda 0.10, K 2). " + conv),)))

    exps.append(Experiment("beyond", "Beyond the paper: NegLabel, CSP and AdaNeg with SeTAR (digits)", (
        TableSpec("beyond", "Scores beyond the paper, vanilla and SeTAR (digits_clip)", ("ID set", "Score", "Method"),
                  detail_cells(ids, BEYOND_SCORES, conds, bb, cols), None,
                  "digits_clip; SeTAR-S with the digits preset (lambda 0.10, K 2), the same plan for every score. "
                  "Every score at its defaults; NegLabel, CSP and AdaNeg mine their negative labels from the shipped "
                  "WordNet corpus with the digits_clip text tower. " + conv,
                  ("AdaNeg adapts to the test stream: its cells are the mean ± population std over the declared "
                   "stream orders (one stream per OOD set, ID test + that set, shuffled by each order seed, the "
                   "reference batch size); the other scores are static and deterministic (one run).",
                   "digits_clip was trained on digit prompts only: the general English words NegLabel, CSP and "
                   "AdaNeg use as negatives mean little to its text tower (results/digits/README.md).")),)))

    ft = [Condition("Vanilla"), Condition("SeTAR", "setar"), Condition("LoCoOp", "locoop", seeds=SEEDS),
          Condition("LoRA", "lora", seeds=SEEDS), Condition("SeTAR+FT", "setar-ft", seeds=SEEDS)]
    summary = []
    for cond in ft:
        for post in ("mcm", "glmcm"):
            for m in METRICS:
                summary.append(Cell((cond.label,), f"{score_label(post)} Score", m, cond.runs(bench, bb, post),
                                    "average"))
    exps.append(Experiment("finetune", "Fine-tuning (digits)", (
        TableSpec("finetune", "Fine-tuning on digits (Table 2 analogue, averages)", ("Method",), tuple(summary), None,
                  "digits_clip; fine-tuning on the 120-image ID val split with the digits presets; LoCoOp, LoRA and "
                  "SeTAR+FT over seeds 3, 4, 5 (mean ± population std); Vanilla and SeTAR are training-free and "
                  "deterministic (one run). " + _conventions()),
        TableSpec("finetune_detail", "Fine-tuning on digits — per OOD set (Table 12 analogue)",
                  ("ID set", "Score", "Method"), detail_cells(ids, ("mcm", "glmcm"), ft, bb, cols), None,
                  "Seeded rows: mean ± population std over seeds 3, 4, 5. " + conv)),
        figures=(_loss_figure("fig6_loss_curves", bench, bb, "SeTAR+FT vs LoRA training losses (digits_clip)"),)))

    def ablation(eid, title, conditions, level, notes=()):
        seeded = any(len(c.seeds) > 1 for c in conditions)
        return Experiment(eid, title, (
            TableSpec(eid, title + " (averages)", ("ID set", "Score"),
                      summary_cells(ids, ("mcm", "glmcm"), conditions, bb), None,
                      "digits_clip; average over the OOD sets. " + _conventions(seeded), notes),
            TableSpec(f"{eid}_detail", title + " — per OOD set", ("ID set", "Score", level),
                      detail_cells(ids, ("mcm", "glmcm"), conditions, bb, cols), None, _conventions(seeded), notes)))

    exps.append(ablation("modality", "Modality searched (digits)", [
        Condition("Vision", "setar", {"modality": "vision"}), Condition("Text", "setar", {"modality": "text"}),
        Condition("Vision+Text", "setar", {"modality": "both"})], "Modality"))
    exps.append(ablation("wp", "SeTAR with and without W_p (digits)", [
        Condition("Vanilla"), Condition("SeTAR w Wp", "setar", {"include_projection": True}),
        Condition("SeTAR w/o Wp", "setar", {"include_projection": False})], "Method"))
    mis_blocked = ("MIS interleaves the towers block by block and needs towers of equal depth; digits_clip has 4 "
                   "vision and 3 text blocks")
    exps.append(ablation("searcher", "Search algorithms (digits)", [
        Condition("LES", "setar", {"searcher": "les"}),
        Condition("MIS", "setar", {"searcher": "mis"}, blocked=mis_blocked),
        Condition("SeTAR-S", "setar", {"searcher": "setar-s"})], "Searcher"))
    exps.append(ablation("prune", "Pruning strategies (digits)", [
        Condition("Principal", "setar", {"prune": "principal"}),
        Condition("Random", "setar", {"prune": "random"}, seeds=SEEDS),
        Condition("Minor", "setar", {"prune": "minor"})], "Prune",
        ("Random: the random-prune seed is the run's seed (3, 4, 5); mean ± std.",)))

    exps.append(_sensitivity(None, "lambda", "Sensitivity to lambda (digits)", "lam", "λ", {ids[0]: DIGITS_LAMBDAS},
                             None, "fig4_lambda", "λ (weight of the LoCoOp OOD term)", fmt="{:.2f}", backbone=bb,
                             columns=cols))
    exps.append(_sensitivity(None, "topk", "Sensitivity to top-K (digits)", "top_k", "top-K", {ids[0]: DIGITS_TOPK},
                             None, "fig5_topk", "K (top-K of the OOD patch mask; 6 ID classes)", fmt="{:d}",
                             backbone=bb, columns=cols))
    exps.append(_weight_types("weight-types", ids, bb, "fig2_3_weight_types",
                              "Weight types: average metric vs searched weight matrices (digits)"))

    cells = []
    for cond in ft:
        runs = cond.runs(bench, bb, "mcm")
        cells.append(Cell((cond.label,), "Digits 0-5", "Accuracy", runs, "id_accuracy"))
    exps.append(Experiment("accuracy", "ID classification accuracy (digits)", (
        TableSpec("accuracy", "ID classification accuracy (digits_clip, Table 7 analogue)", ("Method",),
                  tuple(cells), None, "Top-1 zero-shot accuracy x100 on the ID test split (digits 0-5); seeded rows "
                  "mean ± std over seeds 3, 4, 5. The OOD sets have no class labels, so only the ID column exists."),),
        figures=(_plan_figure("fig7_plan_map", [("Digits 0-5 digits_clip", bench, bb)]),)))
    exps.append(_datasets_experiment(None, [bench], {}))
    return exps


@register("papers", "digits", aliases=("digits-edition",))
class DigitsEdition(Paper):
    """The digits edition: SeTAR's tables and figures on the embedded digits benchmark (digits_clip, offline)."""

    title = "The digits edition"
    version = "digits"
    variants = ("published", "text")  # the SeTAR spellings are accepted; the edition has no variants
    output = "results/digits"

    def experiments(self, variant: str = "published") -> list[Experiment]:
        self.check_variant(variant)
        return digits_experiments()

    def out_dir(self, variant: str = "published"):
        from pathlib import Path

        return Path(self.output)

    def heading(self) -> str:
        return "The digits edition"

    def command(self) -> str:
        return "oodbench tables --benchmark digits"
