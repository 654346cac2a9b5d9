"""The leaderboard a researcher would put in a supplement: near/far averages, ID accuracy, AUPR-In/Out, the best
value per column, method settings in words, ad-hoc benchmarks told apart by their ID data, imported runs marked,
escaped Markdown/CSV; and the HTML page checked in headless chromium at 1400 px (widths, sticky header and first
columns, the per-set column group, ranks that follow the sort)."""

import csv
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from test_leaderboard import _render

from oodbench.metrics import evaluate
from oodbench.results import ResultsStore, RunRecord
from oodbench.reporting.leaderboard import IMPORT_MARK, build, write

GROUPS = {"nearA": "near", "farB": "far", "farC": "far"}
SETAR_PLAN = {"name": "setar", "hash": "5e7a4f00aa11bb22", "display_name": "SeTAR", "prune": "minor", "seed": 3,
              "entries": [{"tower": "vision", "weight_type": "W_up", "layer": 0, "ratio": 0.3},
                          {"tower": "text", "weight_type": "W_up", "layer": 0, "ratio": 0.0}],
              "search": {"searcher": "setar-s", "weight_type": "W_up", "modality": "both", "lambda": 0.05,
                         "top_k": 3, "prune": "minor", "seed": 3},
              "method": {"name": "setar", "options": {"lam": 0.05, "top_k": 3}}}
LORA_PLAN = {"name": "lora", "hash": "10ca10ca10ca10ca", "display_name": "LoRA",
             "lora": {"rank": 8, "alpha": 16.0, "weight_type": "W_up"},
             "train": {"epochs": 5, "lr": 0.01, "batch_size": 32, "lam": 0.1, "top_k": 3, "precision": "fp32",
                       "seed": 4},
             "method": {"name": "lora", "options": {"rank": 8}}}


def _scores(seed: int, shift: float, sets=GROUPS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {"id": rng.normal(2.0, 1.0, 150)}
    for k, name in enumerate(sets):
        out[f"ood/{name}"] = rng.normal(2.0 - shift * (0.6 + 0.5 * k), 1.0, 110)
    return out


def _save(store, scores, *, method="none", plan=None, post="mcm", params=None, benchmark="bench", time="",
          run_id="", id_accuracy=None, extra=None, groups=GROUPS, display=None) -> str:
    ood = {k.removeprefix("ood/"): v for k, v in scores.items() if k.startswith("ood/")}
    rec = RunRecord(
        benchmark=benchmark, id_set="ID test", ood_sets={n: groups.get(n, "far") for n in ood},
        backbone={"name": "clip_b16", "pretrained": None, "weights_hash": "w0"},
        plan=plan or {"name": method, "hash": "none", "display_name": "Vanilla"},
        postprocessor={"name": post, "display_name": display or post.upper(), "params": dict(params or {"tau": 1.0})},
        metrics=evaluate(scores["id"], ood), counts={"id": len(scores["id"]), "ood": {n: len(v) for n, v in ood.items()}},
        id_accuracy=id_accuracy, time=time, run_id=run_id, seed=0, device="cpu", extra=dict(extra or {}))
    return store.save(rec, scores).name


@pytest.fixture()
def store(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    t = lambda d: f"2026-03-{d:02d}T12:00:00+00:00"  # noqa: E731
    _save(s, _scores(1, 1.0), time=t(1), run_id="vanilla", id_accuracy=0.70)
    _save(s, _scores(2, 1.6), method="setar", plan=SETAR_PLAN, time=t(2), run_id="setar", id_accuracy=0.72)
    _save(s, _scores(3, 1.3), method="lora", plan=LORA_PLAN, time=t(3), run_id="lora", id_accuracy=0.75)
    _save(s, _scores(4, 2.2), method="setar", plan={"name": "setar", "hash": None}, time=t(4), run_id="imported",
          extra={"import": {"files": {}, "higher_is": "ood"}})
    return s


def _avg(s, run_id, metric, row="average"):
    return s.load(run_id).metrics[row][metric]


def _group_mean(s, run_id, metric, group):
    rec = s.load(run_id)
    return np.mean([rec.metrics[n][metric] for n, g in GROUPS.items() if g == group])


# ------------------------------------------------------------------------------------------ contents
def test_rows_carry_near_far_id_accuracy_aupr_out_and_settings_in_words(store, tmp_path):
    write(build(store), tmp_path / "out")
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "leaderboard.csv").read_text()))}
    for run_id in ("vanilla", "setar", "lora"):
        r = rows[run_id]
        for group in ("near", "far"):
            for m in ("fpr95", "auroc"):
                assert float(r[f"{group}_avg_{m}"]) == pytest.approx(100 * _group_mean(store, run_id, m, group),
                                                                    abs=5e-5)
        assert float(r["avg_aupr_out"]) == pytest.approx(100 * _avg(store, run_id, "aupr_out"), abs=5e-5)
        assert float(r["id_accuracy"]) == pytest.approx(100 * store.load(run_id).id_accuracy, abs=5e-5)
    assert rows["setar"]["settings"] == ("λ 0.05, top-K 3, SeTAR-S, W_up, both towers, prune minor, seed 3; "
                                         "1 of 2 weights reduced")
    assert rows["lora"]["settings"] == "rank 8, α 16, W_up; 5 epochs, lr 0.01, batch 32, λ 0.1, top-K 3, seed 4"
    assert rows["vanilla"]["settings"] == ""

    md = (tmp_path / "out" / "leaderboard.md").read_text()
    for head in ("near avg FPR95↓", "far avg AUROC↑", "avg AUPR-Out↑", "ID acc↑"):
        assert head in md
    assert "λ 0.05, top-K 3, SeTAR-S" in md and "rank 8, α 16" in md


def test_the_best_value_of_each_column_is_marked(store, tmp_path):
    board = build(store)
    write(board, tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ") and "`" in line]
    head = [c.strip() for c in md.splitlines()[md.splitlines().index(lines[0]) - 2].strip("|").split("|")]
    cells = {line.split("`")[1]: [c.strip() for c in line.strip("|").split("|")] for line in lines}
    ids = list(cells)
    checks = {"avg FPR95↓": ("average", "fpr95", min), "avg AUROC↑": ("average", "auroc", max),
              "avg AUPR-Out↑": ("average", "aupr_out", max), "farC FPR95↓": ("farC", "fpr95", min)}
    for name, (row, metric, pick) in checks.items():
        col = head.index(name)
        want = pick(round(100 * _avg(store, i, metric, row), 2) for i in ids)
        bold = [i for i in ids if cells[i][col].startswith("**")]
        assert bold and all(float(cells[i][col].strip("*")) == want for i in bold)
        assert all(float(cells[i][col]) != want for i in ids if i not in bold)
    col = head.index("near avg AUROC↑")
    want = max(round(100 * _group_mean(store, i, "auroc", "near"), 2) for i in ids)
    assert [i for i in ids if cells[i][col].startswith("**")] == [
        i for i in ids if round(100 * _group_mean(store, i, "auroc", "near"), 2) == want]


def test_imported_runs_are_marked_with_a_legend(store, tmp_path):
    write(build(store), tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    line = next(line for line in md.splitlines() if "`imported`" in line)
    assert f"SeTAR {IMPORT_MARK}" in line  # the registered display name, marked
    assert not any(IMPORT_MARK in ln for ln in md.splitlines() if "`setar`" in ln or "`vanilla`" in ln)
    assert f"{IMPORT_MARK} imported run" in md and "oodbench runs import" in md
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "leaderboard.csv").read_text()))}
    assert (rows["imported"]["imported"], rows["setar"]["imported"]) == ("1", "0")
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert page.count('class="imp"') == 1 and "imported run: per-image scores" in page


def _adhoc_extra(folder: str, fingerprint: str) -> dict:
    return {"data": {"splits": {"ID test": {"role": "id_test", "n": 150, "fingerprint": fingerprint}},
                     "folders": {"ID test": folder}, "file_lists": {"ID test": {"n": 150, "list_digest": "same"}}}}


def test_adhoc_runs_on_different_id_folders_never_merge(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    for i, (folder, fp) in enumerate((("/data/cats", "aaaa1111"), ("/data/dogs", "bbbb2222"),
                                      ("/data/birds", "cccc3333"), ("/data/cats", "aaaa1111"))):
        _save(s, _scores(10 + i, 1.0 + 0.2 * i), benchmark="adhoc", run_id=f"adhoc-{i}",
              time=f"2026-03-0{i + 1}T12:00:00+00:00", extra=_adhoc_extra(folder, fp))
    board = build(s)
    assert len(board) == 3 and all(k.startswith("adhoc · ID ") for k in board)
    by_folder = {k.split("ID ")[1].split(" ")[0]: rows for k, rows in board.items()}
    assert sorted(by_folder) == ["birds", "cats", "dogs"]
    assert [r.run.run_id for r in by_folder["cats"]] == ["adhoc-3"] and by_folder["cats"][0].n_runs == 2
    assert [r.run.run_id for r in by_folder["dogs"]] == ["adhoc-1"] and by_folder["dogs"][0].n_runs == 1
    write(board, tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert md.count("## adhoc · ID ") == 3 and "/data/dogs" in md and "bbbb2222" in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "leaderboard.csv").read_text())))
    assert sorted(r["id_data"] for r in rows) == ["aaaa1111", "bbbb2222", "cccc3333"]


# ------------------------------------------------------------------------------------------- escaping
def test_markdown_and_csv_escape_run_fields(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    evil_html = '<img src=x onerror="alert(1)">'
    evil_formula = '=HYPERLINK("http://example.invalid","click")'
    _save(s, _scores(1, 1.0), post="mcm", display=evil_html, params={"note": evil_formula, "tau": -0.5},
          run_id="evil", plan={"name": "none", "hash": "none", "display_name": "@SUM(A1:A9)"})
    write(build(s), tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=\"alert(1)\"&gt;" in md
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert "<img" not in page
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "leaderboard.csv").read_text())))
    cells = [c for row in rows for c in row]
    assert not any(c[:1] in ("=", "+", "@") for c in cells)
    assert not any(c.startswith("-") and not re.fullmatch(r"-[0-9.]+", c) for c in cells)
    row = dict(zip(rows[0], rows[1]))
    assert json.loads(row["params"]) == {"note": evil_formula, "tau": -0.5}  # JSON: starts with '{', kept whole
    assert row["settings"] == "" and row["method"] == "none"


def test_every_csv_writer_escapes_formulas_and_keeps_numbers():
    from oodbench.reporting.escape import csv_cell, csv_writer, md_cell
    from oodbench.reporting.render import rows_to_csv
    from oodbench.reporting.aggregate import AggregateRow, aggregate_csv, aggregate_markdown

    for cell, want in (("=1+1", "'=1+1"), ("+A1", "'+A1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
                       ("\t=x", "'\t=x"), ("-0.5727", "-0.5727"), ("+1.5", "+1.5"), ("1e-3", "1e-3"), ("-", "-"),
                       ("plain", "plain"), (3.5, 3.5), ("-inf", "'-inf")):
        assert csv_cell(cell) == want, cell
    buf = io.StringIO()
    csv_writer(buf).writerow(["=cmd|' /C calc'!A0", -1.25, "ok"])
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == ["'=cmd|' /C calc'!A0", "-1.25", "ok"]
    assert md_cell("<b>x</b> | y\nz") == "&lt;b&gt;x&lt;/b&gt; \\| y z"

    text = rows_to_csv({"=evil()": {m: 0.5 for m in ("fpr95", "fpr95_oodpos", "auroc", "aupr_in", "aupr_out")}})
    assert text.splitlines()[1].startswith("'=evil()")
    row = AggregateRow("=setar.lam=0.1", "+m", "<i>M</i>", "@p", "<script>x</script>", (0,), ("r",),
                       {"average": {"fpr95": 0.25, "auroc": 0.9}}, {"average": {"fpr95": 0.0, "auroc": 0.0}})
    first = next(csv.DictReader(io.StringIO(aggregate_csv([row]))))
    assert (first["point"], first["method"], first["postprocessor"]) == ("'=setar.lam=0.1", "'+m", "'@p")
    md = aggregate_markdown([row])
    assert "<script>" not in md and "<i>" not in md and "&lt;script&gt;" in md


# -------------------------------------------------------------------------------------------- browser
_MEASURE = """<script>
window.addEventListener("load", function () {
  var out = {innerWidth: window.innerWidth, tables: []};
  document.querySelectorAll("table.board").forEach(function (table) {
    var wrap = table.parentElement, w = wrap.getBoundingClientRect(), t = {};
    t.key = table.getAttribute("data-benchmark");
    t.wrapRight = w.right; t.scrollW = wrap.scrollWidth; t.clientW = wrap.clientWidth;
    t.heads = {};
    table.querySelectorAll("thead tr.heads th").forEach(function (th) {
      var r = th.getBoundingClientRect();
      t.heads[th.getAttribute("data-key")] = {left: r.left, right: r.right,
                                               shown: getComputedStyle(th).display !== "none"};
    });
    var method = table.querySelector("thead tr.heads th.c-method");
    var head = table.querySelector('thead tr.heads th[data-key="fpr95"]');
    var cell = table.querySelector("tbody td.c-method");
    t.methodLeft0 = cell.getBoundingClientRect().left - w.left;
    t.headTop0 = head.getBoundingClientRect().top - w.top;
    var button = document.querySelector('button.toggle[data-table="' + table.id + '"]');
    if (button) button.click();
    t.expanded = {scrollW: wrap.scrollWidth, clientW: wrap.clientWidth,
                  detailShown: Array.prototype.filter.call(table.querySelectorAll("thead tr.heads th.d"),
                    function (th) { return getComputedStyle(th).display !== "none"; }).length,
                  detail: table.querySelectorAll("thead tr.heads th.d").length};
    wrap.scrollLeft = 600; wrap.scrollTop = 400;
    t.scrolled = {left: wrap.scrollLeft, top: wrap.scrollTop,
                  methodLeft: cell.getBoundingClientRect().left - w.left,
                  methodHeadLeft: method.getBoundingClientRect().left - w.left,
                  headTop: head.getBoundingClientRect().top - w.top};
    out.tables.push(t);
  });
  document.body.setAttribute("data-measure", JSON.stringify(out));
});
</script></body>"""


class _Body(HTMLParser):
    measure = None
    ranks: dict = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.measure = a.get("data-measure")


def _measure(page, tmp_path, name, width=1400, height=900):
    copy = page.parent / name
    copy.write_text(page.read_text().replace("</body>", _MEASURE))
    dom = _render(copy, tmp_path, size=f"{width},{height}")
    p = _Body()
    p.feed(dom)
    assert p.measure, dom[:500]
    return json.loads(p.measure)


@pytest.fixture()
def wide_store(tmp_path):
    """A benchmark with five OOD sets (near and far), 40 rows (a tall table), a test-time-free realistic mix."""
    s = ResultsStore(tmp_path / "wide")
    sets = {"iNaturalist": "far", "SUN": "far", "Places": "far", "Textures": "far", "SSB-hard": "near",
            "NINCO": "near"}
    for i in range(40):
        method, plan = [("none", None), ("setar", SETAR_PLAN), ("lora", LORA_PLAN)][i % 3]
        _save(s, _scores(100 + i, 0.8 + 0.03 * i, sets=sets), method=method, plan=plan,
              params={"tau": 1.0 + i}, run_id=f"20260301-1200{i:02d}-imagenet1k-clip_vit_b16-{method}-mcm-ab{i:04d}",
              benchmark="imagenet1k", groups=sets, id_accuracy=0.6 + 0.001 * i)
    return s


def test_browser_page_fits_1400px_with_sticky_header_and_first_columns(wide_store, tmp_path):
    write(build(wide_store), tmp_path / "out")
    m = _measure(tmp_path / "out" / "leaderboard.html", tmp_path, "measure.html")
    assert m["innerWidth"] == 1400
    t = m["tables"][0]
    ranking = ("fpr95", "auroc", "aupr_in", "aupr_out", "near_fpr95", "near_auroc", "far_fpr95", "far_auroc",
               "id_acc", "rank", "method", "run")
    for key in ranking:  # every ranking metric visible at 1400 px, none cut at the right
        assert t["heads"][key]["shown"] and t["heads"][key]["right"] <= t["wrapRight"] <= 1400, key
    assert t["scrollW"] <= t["clientW"]  # collapsed: no horizontal scrolling needed
    assert not any(h["shown"] for k, h in t["heads"].items() if "@" in k)  # per-set columns folded away
    # expanded: all 12 per-set columns shown, the table scrolls sideways inside its frame
    assert t["expanded"]["detail"] == 12 and t["expanded"]["detailShown"] == 12
    assert t["expanded"]["scrollW"] > t["expanded"]["clientW"]
    s = t["scrolled"]
    assert s["left"] > 0 and s["top"] > 0  # it did scroll both ways ...
    assert s["methodLeft"] == pytest.approx(t["methodLeft0"], abs=1.5)  # ... the method column stayed
    assert s["methodHeadLeft"] == pytest.approx(t["methodLeft0"], abs=1.5)
    assert s["headTop"] == pytest.approx(t["headTop0"], abs=1.5)  # ... and so did the header


class _Ranks(HTMLParser):
    """Rank cell texts and row ids in DOM order of the first board."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_rank, self._tables = [], False, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "board" in (a.get("class") or ""):
            self._tables += 1
        if self._tables == 1 and tag == "tr" and "data-run" in a:
            self.rows.append([a["data-run"], ""])
        if self._tables == 1 and tag == "td" and "c-rank" in (a.get("class") or ""):
            self._in_rank = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_rank = False

    def handle_data(self, data):
        if self._in_rank and self.rows:
            self.rows[-1][1] += data


def test_browser_ranks_follow_the_current_sort(store, tmp_path):
    board = build(store)
    write(board, tmp_path / "out")
    page = tmp_path / "out" / "leaderboard.html"
    p = _Ranks()
    p.feed(_render(page, tmp_path))
    assert p.rows == [[r.run.run_id, str(r.rank)] for r in board["bench"]]  # as ranked (FPR95)

    for key, metric, row, sign in (("auroc", "auroc", "average", -1), ("far_fpr95", "fpr95", "far", 1)):
        p = _Ranks()
        p.feed(_render(page, tmp_path, f"#sort={key}"))
        def value(i):
            return _avg(store, i, metric) if row == "average" else _group_mean(store, i, metric, row)
        order = sorted((r.run.run_id for r in board["bench"]), key=lambda i: sign * value(i))
        assert [r[0] for r in p.rows] == order
        assert [r[1] for r in p.rows] == [str(k + 1) for k in range(len(order))]  # 1, 2, 3 ... in the new order
    # the stored ranking and the AUROC order differ in this store: the numbers really moved
    assert [r.run.run_id for r in board["bench"]] != sorted((r.run.run_id for r in board["bench"]),
                                                             key=lambda i: -_avg(store, i, "auroc"))


@pytest.mark.parametrize("pick", ["latest", "best"])
def test_the_page_names_the_pick_rule_of_a_row_with_several_runs(tmp_path, pick):
    s = ResultsStore(tmp_path / "runs")
    for day, shift in ((1, 1.0), (2, 1.5)):
        _save(s, _scores(day, shift), time=f"2026-03-0{day}T12:00:00+00:00", run_id=f"v{day}")
    write(build(s, pick=pick), tmp_path / "out", pick=pick)
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert f"{pick} of 2 runs" in page
