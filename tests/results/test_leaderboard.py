"""`oodbench leaderboard`: grouping, pick rule, ranking, Markdown/CSV contents, and the HTML page rendered and
sorted in a real headless browser (Debian's chromium, which `make test` installs when it runs as root; when it is
missing the browser tests are skipped with the command that installs it, or fail when OODBENCH_REQUIRE_BROWSER=1,
as in CI)."""

import csv
import io
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from store_helpers import save_run, synthetic_scores

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.results import ResultsStore
from oodbench.reporting.leaderboard import build, write
from oodbench.reporting.plots import plot_run
from oodbench.results.runs import find_run


@pytest.fixture()
def store(tmp_path):
    s = ResultsStore(tmp_path / "runs")
    t = lambda d: f"2026-02-{d:02d}T12:00:00+00:00"  # noqa: E731
    ids = {
        # the same group twice: the older run is the better one
        "mcm_old": save_run(s, synthetic_scores(1, shift=2.5), params={"temperature": 1}, time=t(1), run_id="r-mcm-old"),
        "mcm_new": save_run(s, synthetic_scores(2, shift=0.6), params={"temperature": 1}, time=t(2), run_id="r-mcm-new"),
        "setar": save_run(s, synthetic_scores(3, shift=1.5), method="setar", params={"temperature": 1},
                          plan={"name": "setar", "hash": "feedbeef12345678", "entries": []}, time=t(3),
                          run_id="r-setar"),
        "energy": save_run(s, synthetic_scores(4, shift=1.0), post="energy", time=t(4), run_id="r-energy"),
        "mcm_t05": save_run(s, synthetic_scores(5, shift=2.0), params={"temperature": 0.5}, time=t(5),
                            run_id="r-mcm-t05"),
        "other": save_run(s, synthetic_scores(6, sets=("x",)), benchmark="other", time=t(6), run_id="r-other"),
    }
    return s, ids


def _avg(s, run_id, metric, ood="average"):
    return s.load(run_id).metrics[ood][metric]


def test_build_groups_picks_and_ranks(store):
    s, ids = store
    board = build(s, metric="fpr95")
    assert list(board) == ["bench", "other"]
    rows = board["bench"]
    shown = [r.run.run_id for r in rows]
    assert set(shown) == {ids["mcm_new"], ids["setar"], ids["energy"], ids["mcm_t05"]}  # latest of each group
    assert {r.run.run_id: r.n_runs for r in rows}[ids["mcm_new"]] == 2
    assert shown == sorted(shown, key=lambda i: _avg(s, i, "fpr95"))
    assert [r.rank for r in rows] == [1, 2, 3, 4]

    best = build(s, metric="auroc", pick="best", benchmark="bench")
    shown = [r.run.run_id for r in best["bench"]]
    assert ids["mcm_old"] in shown and ids["mcm_new"] not in shown
    assert shown == sorted(shown, key=lambda i: -_avg(s, i, "auroc"))

    with pytest.raises(UserError, match="no stored runs of benchmark 'nope'"):
        build(s, benchmark="nope")
    with pytest.raises(UserError, match="--metric"):
        build(s, metric="aupr")


def test_markdown_and_csv(store, tmp_path):
    s, ids = store
    plot_run(find_run(s, ids["setar"]))
    board = build(s)
    out = tmp_path / "results"
    paths = write(board, out)
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.csv", "leaderboard.html"]

    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert [r["benchmark"] for r in rows] == ["bench"] * 4 + ["other"]
    by_id = {r["run_id"]: r for r in rows}
    rec = s.load(ids["setar"])
    r = by_id[ids["setar"]]
    assert float(r["avg_fpr95"]) == pytest.approx(100 * rec.metrics["average"]["fpr95"], abs=5e-5)
    assert float(r["avg_aupr_in"]) == pytest.approx(100 * rec.metrics["average"]["aupr_in"], abs=5e-5)
    assert float(r["near:auroc"]) == pytest.approx(100 * rec.metrics["near"]["auroc"], abs=5e-5)
    assert r["method"] == "setar" and r["plan_hash"] == "feedbeef12345678" and r["params"] == '{"temperature": 1}'
    assert (out / r["roc_figure"]).resolve() == (s.root / ids["setar"] / "figures" / "roc.png").resolve()
    assert by_id[ids["energy"]]["roc_figure"] == "" and by_id[ids["mcm_new"]]["runs"] == "2"
    assert by_id[ids["other"]]["near:fpr95"] == ""  # that benchmark has no 'near' set

    md = (out / "leaderboard.md").read_text()
    assert "the latest run (by stored time)" in md and "nearest-recall" in md and "ID positive" in md
    assert f"{100 * rec.metrics['average']['auroc']:.2f}" in md
    assert f"(../runs/{ids['setar']}/figures/roc.png)" in md
    assert md.index(f"`{ids['setar']}`") < md.index("## other")


def test_html_is_self_contained(store, tmp_path):
    s, _ = store
    write(build(s), tmp_path)
    page = (tmp_path / "leaderboard.html").read_text()
    assert "<script>" in page and "<script src" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page


# ----------------------------------------------------------------------------------------- the browser
def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        why = ("chromium is not installed: the leaderboard page is tested in a real headless browser; install "
               "Debian's package with `sudo apt-get install -y chromium` (`make test` does it when run as root)")
        if os.environ.get("OODBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return exe


def _render(page: Path, tmp_path: Path, hash_: str = "", size: str = "1400,900") -> str:
    """The page's DOM after its scripts ran, in a ``size`` (``W,H`` px) window."""
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=3000",
         "--hide-scrollbars", f"--window-size={size}", "--dump-dom", page.resolve().as_uri() + hash_],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0 and "<table" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class _Tables(HTMLParser):
    """Per rendered table: its data-sorted attribute, aria-sort headers, and the rows' data-run in DOM order."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "board" in (a.get("class") or ""):
            self.tables.append({"bench": a.get("data-benchmark"), "sorted": a.get("data-sorted"), "runs": [],
                                "aria": {}})
        elif tag == "tr" and "data-run" in a and self.tables:
            self.tables[-1]["runs"].append(a["data-run"])
        elif tag == "th" and self.tables and "aria-sort" in a:
            self.tables[-1]["aria"][a.get("data-key")] = a["aria-sort"]


def _tables(dom: str) -> list[dict]:
    p = _Tables()
    p.feed(dom)
    return p.tables


def test_browser_renders_rows_and_sorts_from_the_url(store, tmp_path):
    s, ids = store
    board = build(s)
    write(board, tmp_path / "out")
    page = tmp_path / "out" / "leaderboard.html"
    bench_ids = [r.run.run_id for r in board["bench"]]

    tables = _tables(_render(page, tmp_path))
    assert [t["bench"] for t in tables] == ["bench", "other"]
    assert tables[0]["runs"] == bench_ids and tables[0]["sorted"] is None  # as ranked, no sort applied
    assert tables[1]["runs"] == [ids["other"]]

    t = _tables(_render(page, tmp_path, "#sort=auroc"))[0]  # AUROC: best (highest) first
    assert t["sorted"] == "auroc:desc" and t["aria"] == {"auroc": "descending"}
    assert t["runs"] == sorted(bench_ids, key=lambda i: -_avg(s, i, "auroc"))

    t = _tables(_render(page, tmp_path, "#sort=fpr95:desc"))[0]
    assert t["runs"] == sorted(bench_ids, key=lambda i: -_avg(s, i, "fpr95"))

    t = _tables(_render(page, tmp_path, "#sort=auroc@far:asc"))[0]
    assert t["runs"] == sorted(bench_ids, key=lambda i: _avg(s, i, "auroc", "far"))
    assert t["runs"] != sorted(bench_ids, key=lambda i: -_avg(s, i, "auroc", "far"))

    t = _tables(_render(page, tmp_path, "#sort=post"))[0]  # text column: alphabetical
    posts = [s.load(i).postprocessor["name"] for i in t["runs"]]
    assert posts == sorted(posts) and posts[0] == "energy"


def test_browser_header_clicks_sort_and_reverse(store, tmp_path):
    """The page's own click handlers, driven by a script the test appends to a copy of the page."""
    s, _ = store
    board = build(s)
    write(board, tmp_path / "out")
    bench_ids = [r.run.run_id for r in board["bench"]]
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    click = ('<script>var th = document.querySelector(\'table.board th[data-key="aupr_in"]\');'
             "th.click();{}</script></body>")
    once = tmp_path / "out" / "once.html"
    once.write_text(page.replace("</body>", click.format("")))
    twice = tmp_path / "out" / "twice.html"
    twice.write_text(page.replace("</body>", click.format("th.click();")))

    t = _tables(_render(once, tmp_path))[0]
    assert t["sorted"] == "aupr_in:desc" and t["runs"] == sorted(bench_ids, key=lambda i: -_avg(s, i, "aupr_in"))
    t = _tables(_render(twice, tmp_path))[0]
    assert t["sorted"] == "aupr_in:asc" and t["runs"] == sorted(bench_ids, key=lambda i: _avg(s, i, "aupr_in"))


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_default_out_is_results_of_the_current_folder(store, tmp_path, monkeypatch, capsys):
    s, ids = store
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["leaderboard", "--benchmark", "bench", "--metric", "auroc", "--results-root", str(s.root)]) == 0
    assert sorted(p.name for p in (work / "results").iterdir()) == ["leaderboard.csv", "leaderboard.html",
                                                                    "leaderboard.md"]
    md = (work / "results" / "leaderboard.md").read_text()
    assert "## other" not in md and "ranked by average AUROC" in md

    assert main(["leaderboard", "--benchmark", "nope", "--results-root", str(s.root), "--out", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no stored runs of benchmark 'nope'" in err and len(err.splitlines()) == 1
    assert not (work / "x").exists()
