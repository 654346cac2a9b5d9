"""The results store never loses a run silently nor fails after the work (issue 19, findings 4, 6, 7, 10):
unreadable runs are named (warning, `runs list` caption, `runs list --check`), run ids are bounded and path-safe,
run folders honour the umask, a damaged scores.npz and a string metric are one-line errors, captions say ID once."""

import json
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_helpers import save_run, synthetic_scores  # noqa: E402

from oodbench.cli import main  # noqa: E402
from oodbench.results import ResultsStore  # noqa: E402
from oodbench.results.store import ID_PART_MAX, id_part  # noqa: E402

ID_CHARS = re.compile(r"^[A-Za-z0-9_.+~-]+$")


def _damage(store: ResultsStore) -> dict[str, str]:
    """Four runs damaged four ways beside one intact run; returns run id -> what the reason must say."""
    ids = [save_run(store, synthetic_scores(seed), post=f"p{seed}") for seed in range(5)]
    result = {i: store.root / i / "result.json" for i in ids}
    text = result[ids[0]].read_text()
    result[ids[0]].write_text(text[: len(text) // 2])  # truncated
    result[ids[1]].write_bytes(b"\x00\xff garbage")  # not text
    data = json.loads(text)
    result[ids[2]].write_text(json.dumps({k: v for k, v in data.items() if k != "metrics"}))  # key missing
    data["metrics"]["average"]["auroc"] = "high"
    result[ids[3]].write_text(json.dumps(data))  # a string metric
    return {ids[0]: "not valid JSON", ids[1]: "not UTF-8", ids[2]: "metrics missing",
            ids[3]: "metric auroc of 'average' is 'high', not a number", ids[4]: ""}


def test_unreadable_runs_are_named_not_dropped(tmp_path, caplog):
    store = ResultsStore(tmp_path / "runs")
    expected = _damage(store)
    good = [i for i, why in expected.items() if not why]
    with caplog.at_level(logging.WARNING, logger="oodbench"):
        assert [r.run_id for r in store.runs()] == good
    warned = "\n".join(r.getMessage() for r in caplog.records)
    bad = dict(store.unreadable())
    assert sorted(bad) == sorted(i for i, why in expected.items() if why) == sorted(i for i, _ in store.left_out)
    for run_id, why in expected.items():
        if why:
            assert why in bad[run_id] and run_id in warned


def test_runs_list_counts_them_and_check_lists_them(tmp_path, capsys):
    store = ResultsStore(tmp_path / "runs")
    expected = _damage(store)
    root = ["--results-root", str(store.root)]
    assert main(["runs", "list", *root]) == 0
    captured = capsys.readouterr()
    assert "4 unreadable run folder(s) left out" in " ".join(captured.out.split())
    assert main(["runs", "list", "--check", *root]) == 1
    out = capsys.readouterr().out
    for run_id, why in expected.items():
        assert (run_id in out) == bool(why)
    assert "4 of 5 run folder(s) unreadable" in " ".join(out.split())
    for run_id, why in expected.items():  # the damaged runs are left alone
        if why:
            assert (store.root / run_id / "result.json").is_file()
    assert main(["leaderboard", *root, "--out", str(tmp_path / "board")]) == 0  # the intact run, and a warning
    err = "".join(capsys.readouterr().err.split())  # log lines are wrapped to the terminal
    for run_id, why in expected.items():
        assert (run_id in err) == bool(why)
    clean = ResultsStore(tmp_path / "clean")
    save_run(clean, synthetic_scores(9))
    assert main(["runs", "list", "--check", "--results-root", str(clean.root)]) == 0


def test_run_ids_are_bounded_and_path_safe(tmp_path):
    store = ResultsStore(tmp_path / "runs")
    long_dir = "local-dir:/data/models/" + "very-long-folder-name/" * 20 + "model"
    run_id = save_run(store, synthetic_scores(1), backbone=long_dir, method="m" * 300, post="mcm:<b>",
                      benchmark="a b/c")
    parts = run_id.split("-")
    assert len(run_id) <= 16 + 4 * (ID_PART_MAX + 1) + 7 and ID_CHARS.match(run_id), run_id
    assert ":" not in run_id and "/" not in run_id and " " not in run_id and "<" not in run_id
    assert store.load(run_id).backbone["name"] == long_dir  # the record keeps the full names
    assert parts[0].isdigit() and len(parts[-1]) == 6
    assert id_part("open_clip:ViT-B-16") == "open_clip_ViT-B-16"
    assert id_part("digits_clip") == "digits_clip" and id_part("x" * 100) == "x" * 7 + "~" + "x" * 16


def test_runs_import_with_a_300_character_method_is_no_traceback(tmp_path, capsys):
    """Stored under a bounded id, or refused in one line (where the import checks method names)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "id.npy", rng.normal(1, 1, 40))
    np.save(tmp_path / "ood.npy", rng.normal(0, 1, 40))
    rc = main(["runs", "import", "--id", str(tmp_path / "id.npy"), "--ood", f"o={tmp_path / 'ood.npy'}",
               "--backbone", "test_clip_tiny", "--benchmark", "adhoc", "--method", "m" * 300, "--post", "mcm",
               "--results-root", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    if rc == 0:
        (run_id,) = ResultsStore(tmp_path / "runs").run_ids()
        assert len(run_id) < 140 and ID_CHARS.match(run_id)
    else:
        assert rc == 2 and len(err.splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)])
def test_run_folders_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        store = ResultsStore(tmp_path / "runs")
        run_id = save_run(store, synthetic_scores(2))
    finally:
        os.umask(old)
    assert (store.root / run_id).stat().st_mode & 0o777 == mode
    assert (store.root / run_id / "result.json").stat().st_mode & 0o666 == 0o666 & mode


def test_a_damaged_scores_file_is_a_one_line_error(tmp_path, capsys):
    store = ResultsStore(tmp_path / "runs")
    run_id = save_run(store, synthetic_scores(3))
    npz = store.root / run_id / "scores.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    assert main(["plot", run_id, "--results-root", str(store.root), "--out", str(tmp_path / "fig")]) == 2
    err = capsys.readouterr().err.strip()
    assert "scores.npz: unreadable per-image scores" in err and len(err.splitlines()) == 1
    assert main(["runs", "show", run_id, "--results-root", str(store.root)]) == 0  # the metrics are intact


def test_the_caption_names_the_id_set_once():
    from oodbench.reporting.render import comparison_table, id_label

    assert id_label("ID test") == "ID test" and id_label("digits 0-5 (test)") == "ID digits 0-5 (test)"
    store_scores = synthetic_scores(4)
    from oodbench.metrics import evaluate
    from oodbench.results import RunRecord

    rows = evaluate(store_scores["id"], {"near": store_scores["ood/near"]})
    rec = RunRecord(benchmark="adhoc", id_set="ID test", ood_sets={"near": "far"}, backbone={"name": "b"},
                    plan={"name": "none"}, postprocessor={"name": "mcm"}, metrics=rows,
                    counts={"id": 120, "ood": {"near": 90}})
    caption = str(comparison_table("MCM", {"none": rec}).caption)
    assert "ID test: 120 images" in caption and "ID ID" not in caption
