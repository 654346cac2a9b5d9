"""The paper's published tables in papers/setar/data/: cells against the paper's text, averages, schema, loader.

The reference values are read in this file from the paper's text (tests/results/paper_text/, verbatim table
lines of both versions; OODBENCH_PAPER_TEXT_DIR may point at the full texts instead): each sample below finds
its line with regular expressions and compares every cell of that row with the CSV.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

from oodbench.errors import UserError
from oodbench.papers.setar.published import (FIELDS, INDEX_FIELDS, PAPER_DIR, load_paper_table, lookup, paper_cells,
                                    paper_tables)

TEXT_DIR = Path(os.environ.get("OODBENCH_PAPER_TEXT_DIR") or Path(__file__).parent / "paper_text")
TEXT_FILE = {"neurips": "setar-neurips2024.txt", "arxiv": "setar-arxiv-tables.md"}
TABLES = {"neurips": range(1, 20), "arxiv": range(1, 23)}


# ------------------------------------------------------------------------------------------------ the paper text
def _text(version: str) -> list[str]:
    return (TEXT_DIR / TEXT_FILE[version]).read_text(encoding="utf-8").splitlines()


def _section_start(version: str, lines: list[str], table: int) -> int:
    pat = rf"\s*Table {table}:.*" if version == "neurips" else rf"### Table {table}"
    starts = [i for i, line in enumerate(lines) if re.fullmatch(pat, line)]
    assert len(starts) == 1, (version, table, starts)
    return starts[0]


def _find_row(version: str, table: int, steps: list[str]) -> str:
    """Walk the table's lines: each regex must match a later line; the last one captures ``vals``."""
    lines = _text(version)
    i = _section_start(version, lines, table)
    end_pat = r"\s*Table \d+:.*" if version == "neurips" else r"### Table \d+"
    m = None
    for step in steps:
        i += 1
        while i < len(lines) and not re.fullmatch(end_pat, lines[i]):
            m = re.fullmatch(step, lines[i].strip())
            if m:
                break
            i += 1
        else:
            raise AssertionError(f"{version} table {table}: no line matching {step!r}")
    return m.group("vals")


def _tokens(version: str, vals: str) -> list[str]:
    return [t.strip() for t in vals.split("|")] if version == "arxiv" else vals.split()


def _expected(token: str, row_marker: str) -> tuple[str, str, str]:
    """(value, std, marker) as the CSV must hold a printed token."""
    if token == "-":
        return "", "", row_marker + "−"
    if token == "⋄":
        return "", "", row_marker + "⋄"
    value, _, std = token.replace(",", "").partition("±")
    return value, std, row_marker


def _n(*groups_and_label: str) -> list[str]:
    """NeurIPS text: group lines printed alone, then ``label v1 v2 ...``."""
    *groups, label = groups_and_label
    return [re.escape(g) for g in groups] + [re.escape(label) + r" (?P<vals>.+)"]


def _a(*groups_and_label: str, labels: int = 1) -> list[str]:
    """arXiv Markdown: ``| **ID set** |``, ``| *group* |`` rows, then ``| label | v1 | ...``."""
    *groups, label = groups_and_label
    steps = [rf"\| \*\*{re.escape(groups[0])}\*\* \|.*"] if groups else []
    steps += [rf"\| \*{re.escape(g)}\* \|.*" for g in groups[1:]]
    return steps + [rf"\| {re.escape(label)} \| (?P<vals>.+) \|"]


# (version, table, steps to the printed line, the row's key in the CSV)
SAMPLES = [
    ("neurips", 1, _n("ImageNet1K", "MCM Score", "Vanilla MCM†"), "ImageNet1K / MCM Score / Vanilla MCM†"),
    ("neurips", 1, _n("Pascal-VOC", "GL-MCM Score", "Vanilla GL-MCM†"),
     "Pascal-VOC / GL-MCM Score / Vanilla GL-MCM†"),
    ("neurips", 1, _n("Pascal-VOC", "MCM Score", "SeTAR"), "Pascal-VOC / MCM Score / SeTAR"),
    ("neurips", 2, _n("CLIP-base MCM Score GL-MCM Score", "LoCoOp∗"), "CLIP-base / LoCoOp∗"),
    ("neurips", 2, _n("CLIP-base MCM Score GL-MCM Score", "NPOS†"), "CLIP-base / NPOS†"),
    ("neurips", 2, _n("Swin-base MSP Score Energy Score", "SeTAR+FT"), "Swin-base / SeTAR+FT"),
    ("neurips", 3, _n("Pascal-VOC", "MCM"), "Pascal-VOC / MCM"),
    ("neurips", 4, _n("ImageNet1K", "GL-MCM"), "ImageNet1K / GL-MCM"),
    ("neurips", 5, _n("Pascal-VOC", "GL-MCM"), "Pascal-VOC / GL-MCM"),
    ("neurips", 6, _n("ImageNet1K", "GL-MCM"), "ImageNet1K / GL-MCM"),
    ("neurips", 6, _n("Pascal-VOC", "MCM"), "Pascal-VOC / MCM"),
    ("neurips", 7, _n("LoCoOp∗"), "LoCoOp∗"),
    ("neurips", 7, _n("SeTAR+FT"), "SeTAR+FT"),
    ("neurips", 8, _n("ImageNet1K", "Swin-base Energy"), "ImageNet1K / Swin-base / Energy"),
    ("neurips", 8, _n("Pascal-VOC", "CLIP-large GL-MCM"), "Pascal-VOC / CLIP-large / GL-MCM"),
    ("neurips", 9, _n(r"Texture (Cimpoi et al., 2014)"), "Texture"),
    ("neurips", 9, _n(r"ImageNet22K (Russakovsky et al., 2015)"), "ImageNet22K"),
    ("neurips", 10, [r"CLIP-large ImageNet1K .*", r"Pascal-VOC (?P<vals>.+)"], "CLIP-large / Pascal-VOC"),
    ("neurips", 10, _n("Swin-base ImageNet1K"), "Swin-base / ImageNet1K"),
    ("neurips", 11, _n("CLIP-large"), "CLIP-large"),
    ("neurips", 12, _n("CLIP-base", "GL-MCM Score", "LoCoOp†"), "CLIP-base / GL-MCM Score / LoCoOp†"),
    ("neurips", 12, _n("Swin-base", "Energy Score", "LoRA∗"), "Swin-base / Energy Score / LoRA∗"),
    ("neurips", 13, _n("Pascal-VOC", "GL-MCM Score", "Text"), "Pascal-VOC / GL-MCM Score / Text"),
    ("neurips", 14, _n("ImageNet1K", "MCM Score", "SeTAR w Wp"), "ImageNet1K / MCM Score / SeTAR w Wp"),
    ("neurips", 15, _n("ImageNet1K", "SwinTransformerV2-base", "Vanilla Energy∗"),
     "ImageNet1K / SwinTransformerV2-base / Vanilla Energy∗"),
    ("neurips", 15, _n("Pascal-VOC", "CLIP-large", "SeTAR+GL-MCM"), "Pascal-VOC / CLIP-large / SeTAR+GL-MCM"),
    ("neurips", 16, _n("Pascal-VOC", "MCM Score", "LES"), "Pascal-VOC / MCM Score / LES"),
    ("neurips", 17, _n("ImageNet1K", "GL-MCM Score", "0.25"), "ImageNet1K / GL-MCM Score / 0.25"),
    ("neurips", 17, _n("Pascal-VOC", "MCM Score", "0.15"), "Pascal-VOC / MCM Score / 0.15"),
    ("neurips", 18, _n("ImageNet1K", "GL-MCM Score", "Random"), "ImageNet1K / GL-MCM Score / Random"),
    ("neurips", 18, _n("Pascal-VOC", "MCM Score", "Random"), "Pascal-VOC / MCM Score / Random"),
    ("neurips", 19, _n("ImageNet1K", "MCM Score", "900"), "ImageNet1K / MCM Score / 900"),
    ("neurips", 19, _n("Pascal-VOC", "GL-MCM Score", "8"), "Pascal-VOC / GL-MCM Score / 8"),
    ("arxiv", 1, _a("Pascal-VOC", "MCM Score", "Vanilla MCM†"), "Pascal-VOC / MCM Score / Vanilla MCM†"),
    ("arxiv", 1, _a("ImageNet1K", "GL-MCM Score", "SeTAR"), "ImageNet1K / GL-MCM Score / SeTAR"),
    ("arxiv", 2, [r"\| CLIP-large \|.*", r"\| SeTAR\+FT \| (?P<vals>.+) \|"], "CLIP-large / SeTAR+FT"),
    ("arxiv", 3, _a("ImageNet1K", "GL-MCM"), "ImageNet1K / GL-MCM"),
    ("arxiv", 4, _a("Pascal-VOC", "MCM"), "Pascal-VOC / MCM"),
    ("arxiv", 5, _a("ImageNet1K", "MCM"), "ImageNet1K / MCM"),
    ("arxiv", 6, _a("Pascal-VOC", "GL-MCM"), "Pascal-VOC / GL-MCM"),
    ("arxiv", 7, _a("Vanilla CLIP∗"), "Vanilla CLIP∗"),
    ("arxiv", 8, _a("ImageNet1K", "CLIP-base | NegLabel"), "ImageNet1K / CLIP-base / NegLabel"),
    ("arxiv", 8, _a("Pascal-VOC", "CLIP-large | MCM"), "Pascal-VOC / CLIP-large / MCM"),
    ("arxiv", 9, [r"\| DICE† \| (?P<vals>[^|]+\|[^|]+) \| SeTAR \|.*"], "DICE†"),
    ("arxiv", 9, [r"\| DICE† \|[^|]+\|[^|]+\| SeTAR \| (?P<vals>.+) \|"], "SeTAR"),
    ("arxiv", 10, _a("LoCoOp | Training-Free"), "LoCoOp / Training-Free"),
    ("arxiv", 11, _a("ImageNet1K (Deng et al., 2009)"), "ImageNet1K"),
    ("arxiv", 12, _a("CLIP-base | Pascal-VOC"), "CLIP-base / Pascal-VOC"),
    ("arxiv", 13, _a("Swin-base"), "Swin-base"),
    ("arxiv", 14, _a("CLIP-base", "MCM Score", "LoCoOp†"), "CLIP-base / MCM Score / LoCoOp†"),
    ("arxiv", 14, _a("Swin-base", "MSP Score", "SeTAR+FT"), "Swin-base / MSP Score / SeTAR+FT"),
    ("arxiv", 15, _a("ImageNet1K", "MCM Score", "Visual"), "ImageNet1K / MCM Score / Visual"),
    ("arxiv", 16, _a("Pascal-VOC", "GL-MCM Score", "SeTAR w Wp"), "Pascal-VOC / GL-MCM Score / SeTAR w Wp"),
    ("arxiv", 17, _a("ImageNet1K", "CLIP-base", "Vanilla NegLabel†"), "ImageNet1K / CLIP-base / Vanilla NegLabel†"),
    ("arxiv", 17, _a("Pascal-VOC", "CLIP-large", "Vanilla MCM∗"), "Pascal-VOC / CLIP-large / Vanilla MCM∗"),
    ("arxiv", 18, _a("ImageNet1K", "GL-MCM Score", "MIS"), "ImageNet1K / GL-MCM Score / MIS"),
    ("arxiv", 19, _a("Pascal-VOC", "GL-MCM Score", "0.01"), "Pascal-VOC / GL-MCM Score / 0.01"),
    ("arxiv", 20, _a("Pascal-VOC", "GL-MCM Score", "Random"), "Pascal-VOC / GL-MCM Score / Random"),
    ("arxiv", 21, _a("ImageNet1K", "GL-MCM Score", "1000"), "ImageNet1K / GL-MCM Score / 1000"),
    ("arxiv", 21, _a("Pascal-VOC", "MCM Score", "8"), "Pascal-VOC / MCM Score / 8"),
    ("arxiv", 22, _a("ASH-P†"), "ASH-P†"),
    ("arxiv", 22, _a("SeTAR"), "SeTAR"),
]


def test_samples_cover_every_table():
    covered = {(v, t) for v, t, _, _ in SAMPLES}
    assert covered == {(v, t) for v, tables in TABLES.items() for t in tables}


@pytest.mark.parametrize("version,table,steps,row", SAMPLES, ids=[f"{s[0]}-{s[1]}-{s[3]}" for s in SAMPLES])
def test_row_equals_the_printed_line(version, table, steps, row):
    tokens = _tokens(version, _find_row(version, table, steps))
    row_marker = row[-1] if row[-1] in "†∗" else ""
    cells = [c for c in load_paper_table(version, table) if c["row"] == row]
    assert len(cells) == len(tokens) > 0
    for c, token in zip(cells, tokens):
        assert (c["value"], c["std"], c["marker"]) == _expected(token, row_marker), (c, token)


def test_spot_values_by_hand():
    """A few cells written out here, from reading the paper (no parsing involved)."""
    assert lookup("neurips", 1, "ImageNet1K / GL-MCM Score / SeTAR", "Average", "FPR95").value == 33.12
    assert lookup("neurips", 2, "CLIP-large / SeTAR+FT", "GL-MCM Score", "AUROC").std == 0.12
    assert lookup("neurips", 15, "Pascal-VOC / CLIP-large / SeTAR+MCM", "COCO", "AUROC").value == 90.67
    assert lookup("arxiv", 10, "SeTAR+FT / Finetuning", "GL-MCM Score", "AUROC").value == 70.42
    assert lookup("arxiv", 11, "Texture", "Test Size", "Test Size").value == 5640
    assert lookup("arxiv", 11, "COCO", "Type", "Type").value == "OOD"
    assert lookup("arxiv", 13, "Swin-base", "Rank for LoRA", "Rank for LoRA").value == 112
    assert lookup("arxiv", 12, "CLIP-large / Pascal-VOC", "λ", "λ").printed == "0.30"


# ------------------------------------------------------------------------------------------------ averages
# Printed averages that are not the mean of their row, in the paper itself (papers/setar/data/README.md).
NOT_A_MEAN = {
    ("neurips", 1, "ImageNet1K / GL-MCM Score / Vanilla GL-MCM†", "FPR95"),
    ("arxiv", 1, "ImageNet1K / GL-MCM Score / Vanilla GL-MCM†", "FPR95"),
    ("neurips", 12, "CLIP-base / MCM Score / LoCoOp†", "FPR95"),
    ("neurips", 12, "CLIP-base / MCM Score / LoCoOp†", "AUROC"),
    ("neurips", 12, "CLIP-base / GL-MCM Score / LoCoOp†", "AUROC"),
    ("arxiv", 14, "CLIP-base / MCM Score / LoCoOp†", "FPR95"),
    ("arxiv", 14, "CLIP-base / MCM Score / LoCoOp†", "AUROC"),
    ("arxiv", 14, "CLIP-base / GL-MCM Score / LoCoOp†", "AUROC"),
    ("arxiv", 22, "ASH-P†", "AUROC"),
}
TABLES_WITH_PER_SET_AVERAGE = {"neurips": {1, 7, 12, 13, 14, 15, 16, 17, 18, 19},
                               "arxiv": {1, 7, 14, 15, 16, 17, 18, 19, 20, 21, 22}}


def test_every_average_is_the_mean_of_its_row():
    failures, checked = set(), defaultdict(set)
    for version, tables in TABLES.items():
        for t in tables:
            by_row = defaultdict(list)
            for c in load_paper_table(version, t):
                by_row[(c["row"], c["metric"])].append(c)
            for (row, metric), cells in by_row.items():
                avg = [c for c in cells if c["column"] == "Average"]
                if not avg:
                    continue
                per_set = [float(c["value"]) for c in cells if c["column"] != "Average" and c["value"]]
                if not per_set:  # arXiv Table 9 prints only averages
                    continue
                checked[version].add(t)
                mean = sum(per_set) / len(per_set)
                if abs(mean - float(avg[0]["value"])) > 0.011:
                    failures.add((version, t, row, metric))
    assert {v: checked[v] for v in TABLES} == TABLES_WITH_PER_SET_AVERAGE
    assert failures == NOT_A_MEAN
    for version, t, row, metric in NOT_A_MEAN:  # each exception carries its note in the data
        assert "not the mean" in lookup(version, t, row, "Average", metric).note


def test_pascal_voc_cited_rows_average_the_five_reported_sets():
    cells = [c for c in paper_cells("neurips", 1) if c.row == "Pascal-VOC / MCM Score / Vanilla MCM†"
             and c.metric == "FPR95"]
    per_set = {c.column: c.value for c in cells}
    places = next(c for c in cells if c.column == "Places")
    assert per_set["Places"] is None and places.not_reported and places.cited
    assert sum(per_set[s] for s in ("iNaturalist", "SUN", "Texture", "ImageNet22K", "COCO")) / 5 == pytest.approx(
        per_set["Average"], abs=0.011)


# ------------------------------------------------------------------------------------------------ across tables
def _summary_pairs(version: str):
    """(summary table, row, column, metric) -> (detail table, row) whose Average it must equal."""
    n = {"neurips": dict(ft=(2, 12), mod=(3, 13), wp=(4, 14), search=(5, 16), prune=(6, 18), bb=(8, 15)),
         "arxiv": dict(ft=(2, 14), mod=(3, 15), wp=(4, 16), search=(5, 18), prune=(6, 20), bb=(8, 17),
                       r50=(9, 22))}[version]
    pairs = []
    for c in load_paper_table(version, n["ft"][0]):
        block, label = c["row"].split(" / ")
        pairs.append((c, n["ft"][1], f"{block} / {c['column']} / {label}"))
    modality = {"Vision": "Visual", "Text": "Text", "Vision+Text": "Visual+Text"}
    for key, rename in (("mod", modality), ("wp", None), ("search", None), ("prune", None)):
        for c in load_paper_table(version, n[key][0]):
            id_set, score = c["row"].split(" / ")
            label = (rename or {}).get(c["column"], c["column"])
            if key == "wp" and label == "Vanilla":
                label = f"Vanilla {score}"
            pairs.append((c, n[key][1], f"{id_set} / {score} Score / {label}"))
    for c in load_paper_table(version, n["bb"][0]):
        id_set, backbone, score = c["row"].split(" / ")
        backbone = "SwinTransformerV2-base" if backbone == "Swin-base" else backbone
        vanilla = f"Vanilla {score}" + ("†" if score == "NegLabel" else "∗")
        label = vanilla if c["column"] == "Vanilla Method" else f"SeTAR+{score}"
        pairs.append((c, n["bb"][1], f"{id_set} / {backbone} / {label}"))
    if "r50" in n:
        pairs += [(c, n["r50"][1], c["row"]) for c in load_paper_table(version, n["r50"][0])]
    return pairs


# The summary Table 6 and its detail table disagree in the paper itself (README, and a note on each cell).
SUMMARY_MISMATCH = {
    (v, 6, row, "Random", metric)
    for v in TABLES
    for row, metric in (("ImageNet1K / GL-MCM", "FPR95"), ("ImageNet1K / GL-MCM", "AUROC"),
                        ("Pascal-VOC / MCM", "FPR95"))
}


@pytest.mark.parametrize("version", list(TABLES))
def test_summary_tables_equal_the_averages_of_their_detail_tables(version):
    mismatches, n = set(), 0
    for c, detail, detail_row in _summary_pairs(version):
        avg = lookup(version, detail, detail_row, "Average", c["metric"])
        n += 1
        if avg.printed != c["value"]:
            mismatches.add((version, int(c["table"]), c["row"], c["column"], c["metric"]))
    assert n == {"neurips": 44 + 4 * 24 + 24, "arxiv": 44 + 4 * 24 + 28 + 16}[version]
    assert mismatches == {m for m in SUMMARY_MISMATCH if m[0] == version}


def test_table1_rerun_and_setar_rows_equal_the_clip_base_rows_of_the_backbone_detail():
    for version, detail in (("neurips", 15), ("arxiv", 17)):
        detail_cells = {(c["row"], c["column"], c["metric"]): c["value"] for c in load_paper_table(version, detail)}
        n = 0
        for c in load_paper_table(version, 1):
            id_set, score, label = c["row"].split(" / ")
            s = score.removesuffix(" Score")
            target = {f"Vanilla {s}∗": f"Vanilla {s}∗", "SeTAR": f"SeTAR+{s}"}.get(label)
            if target:
                assert detail_cells[(f"{id_set} / CLIP-base / {target}", c["column"], c["metric"])] == c["value"]
                n += 1
        assert n == 8 * 14


def test_both_versions_print_the_same_numbers_in_their_shared_tables():
    arxiv_only_rows = {(8, "ImageNet1K / CLIP-base / NegLabel"), (17, "ImageNet1K / CLIP-base / Vanilla NegLabel†"),
                       (17, "ImageNet1K / CLIP-base / SeTAR+NegLabel")}
    shared = [r for r in paper_tables() if r["version"] == "neurips" and r["other_table"]]
    assert len(shared) == 19
    for r in shared:
        a = int(r["other_table"])
        key = ("row", "column", "metric", "value", "std", "marker")
        neurips = [tuple(c[k] for k in key) for c in load_paper_table("neurips", int(r["table"]))]
        arxiv = [tuple(c[k] for k in key) for c in load_paper_table("arxiv", a) if (a, c["row"]) not in arxiv_only_rows]
        assert neurips == arxiv, r["table"]


# ------------------------------------------------------------------------------------------------ files, schema
def test_every_csv_parses_with_the_schema():
    number = re.compile(r"\d+(\.\d+)?")
    for version, tables in TABLES.items():
        for t in tables:
            path = PAPER_DIR / version / f"table{t:02d}.csv"
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                assert tuple(reader.fieldnames) == FIELDS
                rows = list(reader)
            assert rows, path
            keys = [(r["row"], r["column"], r["metric"]) for r in rows]
            assert len(keys) == len(set(keys)), path
            for r in rows:
                assert (r["version"], r["table"]) == (version, str(t))
                assert r["row"] and r["column"] and r["metric"]
                assert set(r["marker"]) <= set("†∗−⋄") and len(r["marker"]) <= 2
                label_marker = r["row"][-1] if r["row"][-1] in "†∗" else ""
                assert r["marker"].rstrip("−⋄") == label_marker, r
                if r["value"] == "":
                    assert r["marker"][-1:] in ("−", "⋄") and r["std"] == ""
                else:
                    assert number.fullmatch(r["value"]) or r["value"] in ("ID", "OOD"), r
                    assert r["marker"][-1:] not in ("−", "⋄")
                assert r["std"] == "" or number.fullmatch(r["std"])
                if r["metric"] in ("FPR95", "AUROC", "Accuracy") and r["value"]:
                    assert 0 <= float(r["value"]) <= 100 and len(r["value"].split(".")[1]) == 2


def test_index_lists_every_file_and_maps_both_ways():
    index = paper_tables()
    with open(PAPER_DIR / "index.csv", newline="", encoding="utf-8") as f:
        assert tuple(csv.DictReader(f).fieldnames) == INDEX_FIELDS
    listed = {r["file"] for r in index}
    on_disk = {p.relative_to(PAPER_DIR).as_posix() for p in PAPER_DIR.glob("*/*.csv")}
    assert listed == on_disk
    assert {(r["version"], int(r["table"])) for r in index} == {(v, t) for v, ts in TABLES.items() for t in ts}
    mapping = {(r["version"], int(r["table"])): (r["other_version"], r["other_table"]) for r in index}
    for (v, t), (ov, ot) in mapping.items():
        assert ov == ("arxiv" if v == "neurips" else "neurips")
        if ot:
            assert mapping[(ov, int(ot))] == (v, str(t))
    # the mapping the arXiv transcription gives: arXiv 9, 10 and 22 exist only there, 11-21 are NeurIPS 9-19
    assert {t for (v, t), (_, ot) in mapping.items() if v == "arxiv" and not ot} == {9, 10, 22}
    assert all(mapping[("arxiv", a)][1] == str(a - 2) for a in range(11, 22))


# ------------------------------------------------------------------------------------------------ loader
def test_lookup_resolves_a_row_without_its_marker_only_when_unique():
    cell = lookup("arxiv", 22, "ASH-S", "Texture", "FPR95")
    assert (cell.row, cell.value, cell.cited, cell.rerun) == ("ASH-S†", 11.93, True, False)
    with pytest.raises(UserError, match="ambiguous.*Vanilla MCM†.*Vanilla MCM∗"):
        lookup("neurips", 1, "Pascal-VOC / MCM Score / Vanilla MCM", "SUN", "FPR95")
    rerun = lookup("neurips", 1, "Pascal-VOC / MCM Score / Vanilla MCM∗", "SUN", "FPR95")
    assert rerun.value == 27.91 and rerun.rerun and not rerun.cited


def test_lookup_of_empty_cells():
    na = lookup("neurips", 1, "ImageNet1K / MCM Score / SeTAR", "COCO", "AUROC")
    assert na.value is None and na.printed == "" and na.not_applicable and not na.not_reported
    nr = lookup("arxiv", 1, "Pascal-VOC / GL-MCM Score / Vanilla GL-MCM†", "Places", "FPR95")
    assert nr.value is None and nr.not_reported and nr.cited and "not reported" in nr.note


@pytest.mark.parametrize("args,message", [
    (("acl", 1, "SeTAR", "SUN", "FPR95"), "unknown paper version"),
    (("neurips", 20, "SeTAR", "SUN", "FPR95"), "no table 20"),
    (("arxiv", 22, "ASH-X", "SUN", "FPR95"), "no row 'ASH-X'"),
    (("arxiv", 22, "SeTAR", "SSB-Hard", "FPR95"), "no cell SSB-Hard/FPR95"),
])
def test_bad_lookups_are_one_line_user_errors(args, message):
    with pytest.raises(UserError, match=message) as err:
        lookup(*args)
    assert "\n" not in str(err.value)


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="package data"):
        paper_tables(root=tmp_path)
    with pytest.raises(UserError, match="package data"):
        load_paper_table("neurips", 1, root=tmp_path)
