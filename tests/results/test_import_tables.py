"""`oodbench runs import` fills the paper tables the way a run of oodbench would, and honestly.

A first import of official-format score files fills its NeurIPS Table 1 cells with the values scikit-learn gives
on the same scores; wrong names, parameters, sets and counts fail in one line before anything is written; the seed
and the ID accuracy are recorded; an Average is only the mean over the benchmark's own OOD sets; imported values are
marked in every table format; `tables --dry-run` offers the import commands beside `oodbench run`.
"""

import json
import shlex
import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve
from table_helpers import record

from oodbench.benchmark import get_benchmark
from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.results import ResultsStore
from oodbench.paper import Cell, RunSpec, TableSpec, experiments
from oodbench.results.importer import import_run, is_imported
from oodbench.reporting.tables import RunIndex, build_table, to_csv, to_json, to_latex, to_markdown

MARK = "‡"  # what marks an imported value (oodbench.results.importer.MARK)
#: Official SeTAR file names (test_ood.py: scores_<dataset>_test.csv) of imagenet1k's splits.
OFFICIAL = {"ImageNet-1K test": "ID_ImageNet1K", "iNaturalist": "OOD_iNaturalist", "SUN": "OOD_Sun",
            "Places": "OOD_Places", "Texture": "OOD_Texture"}


# ------------------------------------------------------------------------------------------------ references
def fpr95_ref(id_s, ood_s):
    """FPR at 95% ID recall from scikit-learn's ROC curve, ID positive: the operating point whose recall is nearest
    0.95; among several at that recall the last one (highest threshold index), as the official metric code takes."""
    y = np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))]
    fpr, tpr, _ = roc_curve(y, np.r_[id_s, ood_s], drop_intermediate=False)
    d = np.abs(tpr - 0.95)
    return float(fpr[np.flatnonzero(d == d.min())[-1]])


def auroc_ref(id_s, ood_s):
    return float(roc_auc_score(np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))], np.r_[id_s, ood_s]))


def write_official(folder, benchmark="imagenet1k", seed=0, sizes=None):
    """Official-format score CSVs of every split of ``benchmark`` (columns mcm_score, gl_mcm_score; values negated,
    higher = OOD) in ``folder``; returns ``{split: {column: scores higher = ID}}``."""
    spec = get_benchmark(benchmark)
    rng = np.random.default_rng(seed)
    out = {}
    splits = [(spec.id_test.name, spec.id_test.expected, 1.0)] + [(s.name, s.expected, 0.0) for s in spec.ood]
    for i, (name, n, mu) in enumerate(splits):
        n = (sizes or {}).get(name, n)
        scores = {"mcm_score": rng.normal(mu + 0.05 * i, 1.0, n), "gl_mcm_score": rng.normal(mu, 0.7, n)}
        out[name] = scores
        stem = OFFICIAL.get(name, name.replace(" ", "_"))
        np.savetxt(folder / f"scores_{stem}_test.csv", -np.c_[scores["mcm_score"], scores["gl_mcm_score"]],
                   delimiter=",", header="mcm_score,gl_mcm_score", comments="", fmt="%.9f")
    return out


def file_of(folder, split):
    return str(folder / f"scores_{OFFICIAL.get(split, split.replace(' ', '_'))}_test.csv")


def digits_argv(tmp_path, *extra, sets=None, post="mcm", method="none"):
    spec = get_benchmark("digits")
    argv = ["runs", "import", "--benchmark", "digits", "--backbone", "digits_clip", "--method", method,
            "--post", post, "--id", file_of(tmp_path, spec.id_test.name), "--column", "mcm_score",
            "--higher-is", "ood", "--results-root", str(tmp_path / "runs")]
    for s in spec.ood:
        if sets is None or s.name in sets:
            argv += ["--ood", f"{s.name}={file_of(tmp_path, s.name)}"]
    return argv + list(extra)


def example_argv():
    """The `oodbench runs import` command of `runs import --help`'s worked example, as argv (without `oodbench`)."""
    from oodbench.cli.runs_cmd import IMPORT_EXAMPLE

    lines, cmd = IMPORT_EXAMPLE.splitlines(), []
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("oodbench runs import"))
    for line in lines[start:]:
        cmd.append(line.strip().rstrip("\\"))
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split(" ".join(cmd))[1:]


# ------------------------------------------------------------------------------------------------ finding 9
def test_help_example_fills_table1_cells_equal_to_sklearn(tmp_path, monkeypatch, capsys):
    """The worked example of `runs import --help`, run as printed on official-format files, fills the NeurIPS
    Table 1 row ImageNet1K / MCM Score / Vanilla MCM with scikit-learn's values, marked as imported everywhere."""
    monkeypatch.chdir(tmp_path)
    truth = write_official(tmp_path)
    argv = example_argv()
    assert argv[:2] == ["runs", "import"] and "--higher-is" in argv and argv[argv.index("--higher-is") + 1] == "ood"
    assert main(argv + ["--results-root", "runs"]) == 0
    said = capsys.readouterr().out
    assert "fills table cells" in said and "table01" in said

    assert main(["tables", "--table", "1", "--no-run", "--out", "out", "--results-root", "runs"]) == 0
    capsys.readouterr()
    data = json.loads((tmp_path / "out" / "table01_training_free.json").read_text())
    row = ["ImageNet1K", "MCM Score", "Vanilla MCM"]
    cells = {(c["column"], c["metric"]): c for c in data["cells"] if c["row"] == row}
    id_s = truth["ImageNet-1K test"]["mcm_score"]
    fprs, aucs = [], []
    for name in ("iNaturalist", "SUN", "Places", "Texture"):
        ood = truth[name]["mcm_score"]
        fprs.append(100 * fpr95_ref(id_s, ood))
        aucs.append(100 * auroc_ref(id_s, ood))
        assert cells[(name, "FPR95")]["value"] == pytest.approx(fprs[-1], abs=1e-6)
        assert cells[(name, "AUROC")]["value"] == pytest.approx(aucs[-1], abs=1e-6)
        assert cells[(name, "FPR95")]["imported"] is True
    assert cells[("Average", "FPR95")]["value"] == pytest.approx(np.mean(fprs), abs=1e-6)
    assert cells[("Average", "AUROC")]["value"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert MARK in data["legend"]
    # the marker and its legend in every format; the other (not imported) cells stay missing
    md = (tmp_path / "out" / "table01_training_free.md").read_text()
    assert f"{cells[('SUN', 'AUROC')]['value']:.2f} {MARK}" in md and f"`{MARK}`: from an imported run" in md
    assert f"{cells[('SUN', 'AUROC')]['value']:.2f} {MARK}" in (tmp_path / "out" / "table01_training_free.csv").read_text()
    tex = (tmp_path / "out" / "table01_training_free.tex").read_text()
    assert f"{cells[('SUN', 'AUROC')]['value']:.2f} $^\\ddagger$" in tex and "imported run" in tex
    vs = (tmp_path / "out" / "table01_training_free_vs_paper.md").read_text()
    assert f"{cells[('SUN', 'AUROC')]['value']:.2f} {MARK}" in vs and "imported run" in vs
    other = [c for c in data["cells"] if c["row"] == ["ImageNet1K", "GL-MCM Score", "Vanilla GL-MCM"]]
    assert other and all(c["status"] in ("missing", "na") and not c.get("imported") for c in other)


def test_first_import_completes_params_and_precision(tmp_path, capsys):
    """`--param` left out: the record holds the score's full defaults and fp32, so the cell matches."""
    write_official(tmp_path, "digits")
    assert main(digits_argv(tmp_path)) == 0
    store = ResultsStore(tmp_path / "runs")
    rec = store.load(store.run_ids()[0])
    assert rec.postprocessor["params"] == {"tau": 1.0} and rec.precision == "fp32"
    assert rec.id_set == "digits 0-5 (test)" and rec.ood_sets["digits 6-9"] == "near"
    assert "fills table cells" in capsys.readouterr().out
    assert main(["runs", "list", "--results-root", str(tmp_path / "runs")]) == 0
    listed = capsys.readouterr().out
    assert f" {MARK}" in listed and f"{MARK}: imported" in listed.replace("\n", " ")


def test_dry_run_offers_the_import_commands(tmp_path, capsys):
    from oodbench.results.importer import import_command

    assert main(["tables", "--table", "1", "--dry-run", "--results-root", str(tmp_path / "runs")]) == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert "oodbench run " in text
    assert ("oodbench runs import --benchmark imagenet1k --backbone clip_vit_b16 --method none --post glmcm "
            "--id ID_FILE --ood iNaturalist=iNaturalist_FILE") in text
    spec = RunSpec.make("digits", "digits_clip", "mcm")
    assert "--ood 'digits 6-9=digits_6-9_FILE'" in import_command(spec)
    assert import_command(RunSpec.make("imagenet1k", "clip_vit_b16", "mcm", "setar", {"modality": "vision"})) is None


# ------------------------------------------------------------------------------------------------ finding 10
@pytest.mark.parametrize("change, message", [
    (("--backbone", "digit_clip"), "did you mean digits_clip?"),
    (("--benchmark", "digit"), "did you mean digits"),
    (("--method", "setr"), "did you mean setar"),
    (("--post", "mcn"), "did you mean mcm"),
    (("--precision", "fp33"), "use one of fp32, fp16, bf16"),
    (("--param", "temperature=1"), "mcm has no parameter 'temperature'; its parameters: tau (default 1.0)"),
    (("--param", "glmcm.tau=1"), "the scores imported are mcm's"),
    (("--param", "tau=high"), "mcm.tau is a number"),
    (("--id-accuracy", "64.07"), "0.6407"),
    (("--group", "textures=near"), "textures is a far OOD set of digits"),
    (("--id-set", "digits"), "the ID test set of digits is 'digits 0-5 (test)'"),
    ("rename", "has no OOD set 'Textures' (did you mean textures?)"),
    ("drop", "missing: noise"),
    ("short", "holds 199 scores, but digits's split 'faces' has 200 images"),
])
def test_wrong_inputs_fail_in_one_line_and_write_nothing(tmp_path, capsys, change, message):
    write_official(tmp_path, "digits", sizes={"faces": 199} if change == "short" else None)
    argv = digits_argv(tmp_path, sets=None if change != "drop" else ["digits 6-9", "textures", "faces", "photos"])
    if change == "rename":
        argv = [a.replace("textures=", "Textures=") for a in argv]
    elif isinstance(change, tuple):
        flag, value = change
        argv = argv[:argv.index(flag)] + argv[argv.index(flag) + 2:] if flag in argv else argv
        argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    root = tmp_path / "runs"
    assert not root.exists() or list(root.iterdir()) == []


def test_run_syntax_aliases_and_partial(tmp_path, capsys):
    write_official(tmp_path, "digits", sizes={"faces": 199})
    argv = digits_argv(tmp_path, "--param", "MCM.tau=2", sets=["digits 6-9", "faces"])
    argv[argv.index("--post") + 1] = "MCM"
    assert main(argv + ["--partial"]) == 0
    store = ResultsStore(tmp_path / "runs")
    rec = store.load(store.run_ids()[0])
    assert rec.postprocessor == {"name": "mcm", "params": {"tau": 2.0}, "aps": None}
    assert set(rec.ood_sets) == {"digits 6-9", "faces"}
    assert rec.extra["import"]["partial"] == {"missing_sets": ["textures", "photos", "noise"],
                                              "counts": {"faces": {"expected": 200, "found": 199}}}
    assert "partial import" in capsys.readouterr().out
    assert main(["runs", "show", store.run_ids()[0], "--results-root", str(tmp_path / "runs")]) == 0
    shown = capsys.readouterr().out
    assert "OOD sets not imported: textures, photos, noise" in shown and "faces: 199 scores" in shown


# ------------------------------------------------------------------------------------------------ finding 11
def _average_table(benchmark, sets):
    spec = RunSpec.make(benchmark, "clip_b", "mcm")
    cells = [Cell(("row",), s, "FPR95", (spec,), s) for s in sets] + [Cell(("row",), "Average", "FPR95", (spec,))]
    return TableSpec("t", "t", ("r",), tuple(cells))


def test_average_only_over_the_benchmarks_own_sets():
    """A run of 2 of imagenet1k's 4 OOD sets shows its sets, never its own mean as the Average."""
    part = {"SUN": {"fpr95": 0.40, "auroc": 0.9}, "Texture": {"fpr95": 0.50, "auroc": 0.8},
            "average": {"fpr95": 0.45, "auroc": 0.85}}
    sets = ("iNaturalist", "SUN", "Places", "Texture")
    result = build_table(_average_table("imagenet1k", sets), RunIndex([record(part, benchmark="imagenet1k",
                                                                              run_id="r1")]))
    values = {c.column: v for c, v in zip(result.spec.cells, result.values)}
    assert values["SUN"].value == pytest.approx(40.0) and values["Texture"].value == pytest.approx(50.0)
    assert values["iNaturalist"].status == "missing" and values["Average"].status == "missing"
    assert "covers 2 of the 4 OOD sets of imagenet1k (not iNaturalist, Places)" in values["Average"].note
    assert values["Average"].note in to_markdown(result)
    assert json.loads(to_json(result))["cells"][-1]["note"] == values["Average"].note
    full = {s: {"fpr95": 0.1 * (i + 1), "auroc": 0.9} for i, s in enumerate(sets)}
    full["average"] = {"fpr95": 0.25, "auroc": 0.9}
    result = build_table(_average_table("imagenet1k", sets), RunIndex([record(full, benchmark="imagenet1k")]))
    assert result.values[-1].status == "ok" and result.values[-1].value == pytest.approx(25.0)
    # a benchmark oodbench does not know (an ad-hoc one) keeps the run's own sets
    result = build_table(_average_table("adhoc", ("SUN", "Texture")), RunIndex([record(part, benchmark="adhoc")]))
    assert result.values[-1].value == pytest.approx(45.0)


# ------------------------------------------------------------------------------------------------ finding 12
def test_seed_stored_and_seeded_cell_filled(tmp_path, capsys):
    table = next(t for e in experiments("neurips", "digits") if e.id == "finetune" for t in e.tables
                 if t.key == "finetune")
    cell = next(c for c in table.cells if len(c.runs) == 3 and c.metric == "FPR95"
                and all(not r.options and not r.blocked for r in c.runs))  # runs an import can stand for
    averages = []
    for r in cell.runs:
        truth = write_official(tmp_path, "digits", seed=r.seed)
        assert main(digits_argv(tmp_path, "--seed", str(r.seed), post=r.post, method=r.method)) == 0
        id_s = truth["digits 0-5 (test)"]["mcm_score"]
        averages.append(np.mean([100 * fpr95_ref(id_s, truth[s.name]["mcm_score"])
                                 for s in get_benchmark("digits").ood]))
    capsys.readouterr()
    store = ResultsStore(tmp_path / "runs")
    assert sorted(store.load(i).seed for i in store.run_ids()) == [3, 4, 5]
    result = build_table(TableSpec("t", "t", ("r",), (cell,)), RunIndex.from_store(store))
    v = result.values[0]
    assert v.status == "ok" and v.imported and v.found == 3
    assert v.value == pytest.approx(np.mean(averages), abs=1e-6)
    assert v.std == pytest.approx(np.std(averages), abs=1e-6)


# ------------------------------------------------------------------------------------------------ finding 13
def test_native_runs_carry_no_marker_imported_ones_do(tmp_path):
    rows = {"A": {"fpr95": 0.2, "auroc": 0.9}, "average": {"fpr95": 0.2, "auroc": 0.9}}
    spec = RunSpec.make("adhoc", "clip_b", "mcm")
    table = TableSpec("t", "t", ("r",), (Cell(("row",), "A", "FPR95", (spec,), "A"),))
    native = build_table(table, RunIndex([record(rows, benchmark="adhoc")]))
    imported_rec = record(rows, benchmark="adhoc")
    imported_rec.extra = {"import": {"files": {}}}
    assert is_imported(imported_rec) and not is_imported(record(rows))
    imported = build_table(table, RunIndex([imported_rec]))
    for render in (to_markdown, to_csv, to_latex):
        assert "20.00" in render(native) and MARK not in render(native) and "ddagger" not in render(native)
    assert "imported" not in json.loads(to_json(native))["cells"][0] and "legend" not in json.loads(to_json(native))
    assert "20.00 ‡" in to_markdown(imported) and "20.00 ‡" in to_csv(imported)
    assert "20.00 $^\\ddagger$" in to_latex(imported)
    assert json.loads(to_json(imported))["cells"][0]["imported"] is True


# ------------------------------------------------------------------------------------------------ finding 14
def test_table7_md_json_and_dry_run_agree(tmp_path, capsys):
    """A stored vanilla CLIP-B run without an ID accuracy: every view says the cell is missing and why; the
    import's --id-accuracy fills it."""
    rng = np.random.default_rng(3)
    spec = get_benchmark("imagenet1k")
    np.save(tmp_path / "id.npy", rng.normal(1, 1, spec.id_test.expected))
    ood = {}
    for s in spec.ood:
        np.save(tmp_path / f"{s.name}.npy", rng.normal(0, 1, s.expected))
        ood[s.name] = tmp_path / f"{s.name}.npy"
    store = ResultsStore(tmp_path / "runs")
    kw = dict(benchmark="imagenet1k", backbone="clip_vit_b16", method="none", postprocessor="mcm")
    import_run(store, tmp_path / "id.npy", ood, **kw)
    root = ["--results-root", str(tmp_path / "runs")]
    assert main(["tables", "--table", "accuracy", "--no-run", "--out", str(tmp_path / "out"), *root]) == 0
    capsys.readouterr()
    md = (tmp_path / "out" / "table07_accuracy.md").read_text()
    cells = json.loads((tmp_path / "out" / "table07_accuracy.json").read_text())["cells"]
    cell = next(c for c in cells if c["row"] == ["Vanilla CLIP"] and c["column"] == "IN1K")
    assert cell["status"] == "missing" and cell["found"] == 1 and f"run {store.run_ids()[0]} stores no" in cell["note"]
    assert cell["note"] in md
    assert main(["tables", "--table", "accuracy", "--dry-run", *root]) == 0
    assert cell["note"] in capsys.readouterr().out.replace("\n", " ")

    # the official protocol's accuracies (--classify-accuracy) fill the published Table 7, the ID accuracy the
    # paper text's variant (standard zero-shot accuracy of the ID test split)
    official = {"ImageNet-1K test": 0.6407, "SUN": 0.7523, "Places": 0.4611, "Texture": 0.4438}
    shutil.rmtree(tmp_path / "runs" / store.run_ids()[0])  # (the newest run wins; both may share a second)
    import_run(store, tmp_path / "id.npy", ood, **kw, id_accuracy=0.6512, classify=official)
    assert main(["tables", "--table", "accuracy", "--no-run", "--out", str(tmp_path / "out"), *root]) == 0
    cells = json.loads((tmp_path / "out" / "table07_accuracy.json").read_text())["cells"]
    row = {c["column"]: c for c in cells if c["row"] == ["Vanilla CLIP"]}
    assert row["IN1K"]["value"] == pytest.approx(64.07) and row["SUN"]["value"] == pytest.approx(75.23)
    assert row["Average"]["value"] == pytest.approx(100 * np.mean(list(official.values())))
    assert all(row[c]["imported"] is True for c in ("IN1K", "SUN", "Places", "Texture", "Average"))
    assert f"64.07 {MARK}" in (tmp_path / "out" / "table07_accuracy.md").read_text()
    assert main(["tables", "--table", "accuracy", "--variant", "text", "--no-run", "--out", str(tmp_path / "text"),
                 *root]) == 0
    cells = json.loads((tmp_path / "text" / "table07_accuracy.json").read_text())["cells"]
    cell = next(c for c in cells if c["row"] == ["Vanilla CLIP"] and c["column"] == "IN1K")
    assert cell["status"] == "ok" and cell["value"] == pytest.approx(65.12) and cell["imported"] is True
    with pytest.raises(UserError, match="has no label list for 'Sun' \\(did you mean SUN\\?\\)"):
        import_run(store, tmp_path / "id.npy", ood, **kw, classify={"Sun": 0.7})


@pytest.mark.parametrize("edition", [("neurips", None), ("arxiv", None), ("neurips", "digits")])
def test_every_printed_import_command_parses_into_its_run(edition, tmp_path):
    """Each `oodbench runs import ...` the dry run prints, run through the real CLI with score files of the splits'
    sizes in place of its placeholders, stores a run that the table spec it stands for matches."""
    from oodbench.results.importer import import_command
    from oodbench.reporting.tables import matches

    specs = [r for e in experiments(*edition) for r in e.runs()]
    commands = [(s, import_command(s)) for s in dict.fromkeys(specs)]
    assert sum(c is not None for _, c in commands) >= 8
    sizes = {}
    for i, (spec, cmd) in enumerate(c for c in commands if c[1] is not None):
        argv = shlex.split(cmd.split(" [--column")[0])
        assert argv[:3] == ["oodbench", "runs", "import"]
        bench = get_benchmark(argv[argv.index("--benchmark") + 1])
        sizes = {bench.id_test.name: bench.id_test.expected, **{o.name: o.expected for o in bench.ood}}
        files = []
        for j, a in enumerate(argv):
            if a.endswith("_FILE"):
                name = bench.id_test.name if argv[j - 1] == "--id" else a.rpartition("=")[0]
                path = tmp_path / f"{i}_{len(files)}.npy"
                np.save(path, np.random.default_rng(j).normal(size=sizes[name]))
                argv[j] = str(path) if argv[j - 1] == "--id" else f"{name}={path}"
                files.append(path)
        root = tmp_path / f"runs{i}"
        assert main(argv[1:] + ["--results-root", str(root), "-q"]) == 0, cmd
        (stored,) = ResultsStore(root).runs()
        assert matches(stored, spec), (cmd, spec)


def test_an_import_no_cell_takes_says_why(tmp_path, capsys):
    write_official(tmp_path, "digits")
    assert main(digits_argv(tmp_path, "--precision", "fp16")) == 0
    assert "fills no table cell: table cells take fp32 runs; this one is fp16" in capsys.readouterr().out
    assert main(digits_argv(tmp_path, method="lora")) == 0
    assert "import with --seed 3, 4, 5" in capsys.readouterr().out.replace("\n", " ")
