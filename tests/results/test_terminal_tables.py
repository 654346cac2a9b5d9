"""Terminal tables never cut a number: at 80 columns (a terminal, and piped output, which rich prints 80 wide) the
tables of `oodbench run` (four methods beside vanilla), `runs compare` (three runs), `runs list` and `sweep` keep
every value whole — wrapped labels, the id-only run list, or a table split into parts that repeat the key columns.

Each test first shows, with the same data, that printing the table the plain rich way cuts numbers at that width
(a positive control: the check below would catch it)."""

import io
import re
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from store_helpers import save_run, synthetic_scores

import oodbench.cli.runs_cmd as runs_cmd
import oodbench.console as console_mod
from oodbench.cli import main
from oodbench.cli.run_cmd import print_note, print_results
from oodbench.cli.sweep_cmd import print_aggregate
from oodbench.console import fit_table, print_table
from oodbench.registry import get
from oodbench.results import ResultsStore, RunRecord
from oodbench.reporting.render import comparison_table
from oodbench.reporting.aggregate import AggregateRow, aggregate_table

WIDTH = 80
SETS = {"digits 6-9": "near", "textures": "far", "faces": "far", "photos": "far", "noise": "far"}
METHODS = ("vanilla", "SeTAR", "SeTAR+FT", "LoRA", "LoCoOp")


def _console(terminal: bool = True, width: int = WIDTH) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None,
                   legacy_windows=False)


def _text(console: Console) -> str:
    return console.file.getvalue()


def _assert_whole(text: str, values: list[str], width: int = WIDTH) -> None:
    """No line wider than ``width``, no ellipsis, and every expected value on one line, unbroken."""
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    assert "…" not in text
    missing = [v for v in values if not any(v in line for line in lines)]
    assert not missing, missing


def _record(rng, method: str, benchmark: str = "digits") -> RunRecord:
    metrics = {s: {m: float(rng.uniform(0.01, 0.99)) for m in ("fpr95", "auroc", "aupr_in", "aupr_out")}
               for s in SETS}
    metrics["average"] = {m: float(np.mean([metrics[s][m] for s in SETS])) for m in metrics["textures"]}
    return RunRecord(benchmark=benchmark, id_set="digits 0-5 (test)", ood_sets=dict(SETS),
                     backbone={"name": "digits_clip"}, plan={"name": method.lower(), "display_name": method},
                     postprocessor={"name": "mcm", "display_name": "MCM", "params": {"tau": 1.0}},
                     metrics=metrics, counts={"id": 300, "ood": {s: 100 for s in SETS}}, id_accuracy=0.9733)


def test_run_table_with_four_methods_keeps_every_number_whole():
    """`oodbench run --method setar,setar-ft,lora,locoop --post mcm`: five methods' FPR95/AUROC columns."""
    rng = np.random.default_rng(0)
    records = {m: _record(rng, m) for m in METHODS}
    results = [SimpleNamespace(postprocessor="mcm", method=m.lower(), record=r) for m, r in records.items()]
    values = [f"{100 * r.metrics[s][m]:.2f}" for r in records.values() for s in r.metrics for m in ("fpr95", "auroc")]

    plain = _console()
    plain.print(comparison_table("MCM", records))  # positive control: rich squeezes the columns and cuts numbers
    assert "…" in _text(plain)

    for terminal in (True, False):
        c = _console(terminal)
        print_results(results, console=c)
        text = _text(c)
        _assert_whole(text, values + list(METHODS))
        assert "(part 1/2)" in text and "(part 2/2)" in text
        assert text.count("digits 6-9") == 2  # each part repeats the OOD set column


def test_the_digits_run_says_what_the_toy_can_show():
    c = _console(False)
    print_note(get("benchmarks", "digits")(), console=c)
    text = _text(c)
    assert len(text.strip().splitlines()) == 1
    assert "six class prompts" in text and "SeTAR is worse than vanilla" in text
    assert "results/digits/README.md" in text
    c = _console(False)
    print_note(SimpleNamespace(note=""), console=c)  # a benchmark without a note prints nothing
    assert _text(c) == ""


@pytest.fixture()
def store(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    for i, (method, post) in enumerate((("setar-ft", "glmcm"), ("lora", "mcm"), ("none", "energy"))):
        save_run(s, synthetic_scores(i, sets=("iNaturalist", "SUN", "Places", "Textures")), benchmark="imagenet1k",
                 backbone="clip_vit_b16", method=method, post=post, time=f"2026-02-0{i + 1}T12:00:00+00:00",
                 run_id=f"20260201-12000{i}-imagenet1k-clip_vit_b16-{method}-{post}-a1b2c{i}")
    return s


def _use_console(monkeypatch, c: Console) -> None:
    monkeypatch.setattr(runs_cmd, "out", c)
    monkeypatch.setattr(console_mod, "out", c)


@pytest.mark.parametrize("terminal", [True, False])
def test_runs_compare_three_runs(store, monkeypatch, terminal):
    ids = store.run_ids()
    recs = [store.load(i) for i in ids]
    values = []
    for k, rec in enumerate(recs):
        for name in rec.metrics:
            for m in ("fpr95", "auroc"):
                v = f"{100 * rec.metrics[name][m]:.2f}"
                if k:
                    v += f" ({100 * (rec.metrics[name][m] - recs[0].metrics[name][m]):+.2f})"
                values.append(v)
    c = _console(terminal)
    _use_console(monkeypatch, c)
    assert main(["runs", "compare", *ids, "--results-root", str(store.root)]) == 0
    _assert_whole(_text(c), values + ids)


def test_runs_list_keeps_ids_on_one_line(store, monkeypatch, capsys):
    ids = store.run_ids()
    values = [f"{100 * store.load(i).metrics['average'][m]:.2f}" for i in ids for m in ("fpr95", "auroc")]

    plain = _console()  # positive control: the list as it used to be printed folds the ids at 80 columns
    table = runs_cmd.Table()
    for name in ("id", "time (UTC)", "benchmark", "backbone", "method", "post", "FPR95↓", "AUROC↑"):
        table.add_column(name, overflow="fold")
    for i in ids:
        table.add_row(i, "2026-02-01 12:00", "imagenet1k", "clip_vit_b16", "setar-ft", "glmcm", "27.49", "90.80")
    plain.print(table)
    assert not all(any(i in line for line in _text(plain).splitlines()) for i in ids)

    c = _console(True)
    _use_console(monkeypatch, c)
    assert main(["runs", "list", "--results-root", str(store.root)]) == 0
    _assert_whole(_text(c), values + ids)

    c = _console(True, width=160)  # a wide terminal: every column
    _use_console(monkeypatch, c)
    assert main(["runs", "list", "--results-root", str(store.root)]) == 0
    assert "backbone" in _text(c) and "clip_vit_b16 " in _text(c)
    _assert_whole(_text(c), values + ids, width=160)


def _sweep_rows() -> list[AggregateRow]:
    rows = []
    for j, lam in enumerate((0.01, 0.05, 0.1, 0.5)):
        for k in (0, 1, 2):
            f, a = 0.2 + 0.01 * j + 0.001 * k, 0.9 - 0.01 * j
            rows.append(AggregateRow(f"setar.lam={lam}, setar.top_k={k}", "setar", "SeTAR", "glmcm",
                                     "GL-MCM (temperature=1.0)", (3, 4, 5), ("a", "b", "c"),
                                     {"average": {"fpr95": f, "auroc": a}},
                                     {"average": {"fpr95": 0.0123, "auroc": 0.0045}}, (0.9733, 0.0027)))
    return rows


def test_sweep_point_column_is_readable():
    rows = _sweep_rows()
    plain = _console()  # positive control: printed the plain rich way, the point column is cut or folded
    plain.print(aggregate_table(rows))
    assert not re.search(r"setar\.lam=0\.01,", _text(plain))

    values = [f"{100 * r.mean['average'][m]:.2f} ± {100 * r.std['average'][m]:.2f}"
              for r in rows for m in ("fpr95", "auroc")] + ["97.33 ± 0.27"]
    for terminal in (True, False):
        c = _console(terminal)
        print_aggregate(rows, console=c)
        text = _text(c)
        _assert_whole(text, values)
        for lam in (0.01, 0.05, 0.1, 0.5):  # each point's λ and top-K readable, whole
            assert re.search(rf"setar\.lam={lam},", text)
        assert all(f"setar.top_k={k}" in text for k in (0, 1, 2))


def test_fit_table_splits_only_when_needed_and_keeps_groups():
    table = comparison_table("MCM", {m: _record(np.random.default_rng(1), m) for m in METHODS[:2]})
    assert len(fit_table(table, 120)) == 1
    parts = fit_table(comparison_table("MCM", {m: _record(np.random.default_rng(1), m) for m in METHODS}), 80,
                      keep=2, group=2)
    assert len(parts) >= 2
    for part in parts:
        heads = [str(c.header) for c in part.columns]
        assert heads[:2] == ["OOD set", "group"] and len(heads[2:]) % 2 == 0
        assert all(heads[i].split("\n")[0] == heads[i + 1].split("\n")[0] for i in range(2, len(heads), 2))
    c = _console(width=200)
    print_table(table, console=c)  # fits: one table, title above it
    assert "(part" not in _text(c) and _text(c).splitlines()[0].startswith("MCM")
