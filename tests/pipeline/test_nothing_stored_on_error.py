"""Everything a command needs is validated before any work or write: a bad plan, bad method options, a missing
ID val split or a results root / cache folder that is a file give one line, exit 2, and store nothing."""

import json

import pytest

from oodbench.cli import main


def _args(folders, tmp_path, val=True):
    a = ["--backbone", "test_clip_tiny", "--id-test", str(folders / "id_test"), "--ood", f"blobs={folders / 'ood'}",
         "--classes", str(folders / "classes.txt"), "--cache-dir", str(tmp_path / "cache"),
         "--results-root", str(tmp_path / "runs"), "-q"]
    return a + (["--id-val", str(folders / "id_val")] if val else [])


def _plan(tmp_path, text):
    p = tmp_path / "plan.json"
    p.write_text(text)
    return str(p)


GOOD_ENTRY = {"tower": "vision", "weight_type": "W_up", "layer": 0, "ratio": 0.2}


@pytest.mark.parametrize("case, message", [
    ("missing", "plan"),
    ("not-json", "plan"),
    ("unknown-layer", "layer 7"),
    ("ratio", "ratio"),
    ("no-val", "ID val"),
    ("bad-ratios", "ratios"),
    ("negative-lambda", "lambda"),
])
def test_setar_errors_store_nothing(folders, tmp_path, capsys, case, message):
    val = case != "no-val"
    extra = ["--method", "setar"]
    if case == "missing":
        extra += ["--plan", str(tmp_path / "nope.json")]
    elif case == "not-json":
        extra += ["--plan", _plan(tmp_path, "{not json")]
    elif case == "unknown-layer":
        extra += ["--plan", _plan(tmp_path, json.dumps({"entries": [GOOD_ENTRY | {"layer": 7}], "prune": "minor"}))]
    elif case == "ratio":
        extra += ["--plan", _plan(tmp_path, json.dumps({"entries": [GOOD_ENTRY | {"ratio": 1.5}], "prune": "minor"}))]
    elif case == "bad-ratios":
        extra += ["--ratios", "0,1.5"]
    elif case == "negative-lambda":
        extra += ["--lambda", "-1"]
    assert main(["run", "--post", "mcm", *_args(folders, tmp_path, val), *extra]) == 2
    err = capsys.readouterr().err
    assert message.lower() in err.lower() and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_results_root_or_cache_dir_that_is_a_file(folders, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    base = [a for a in _args(folders, tmp_path) if a]
    i = base.index("--results-root")
    for flag in ("--results-root", "--cache-dir"):
        args = list(base)
        args[args.index(flag) + 1] = str(tmp_path / "file")
        assert main(["run", "--post", "mcm", *args]) == 2
        err = capsys.readouterr().err
        assert "is a file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert i > 0 and not (tmp_path / "runs").exists()


def test_unused_method_option_is_refused(folders, tmp_path, capsys):
    assert main(["run", "--post", "mcm", *_args(folders, tmp_path), "--topk", "2"]) == 2
    assert "--topk is an option of method setar" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_topk_at_or_above_the_classes_warns(folders, tmp_path, capsys):
    """K >= C is the ID loss only (the paper's top-K figure includes it): a warning, and the run goes on."""
    assert main(["run", "--post", "mcm", *_args(folders, tmp_path), "--method", "setar", "--topk", "6", "--ratios",
                 "0,0.2", "--modality", "vision"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "top-K 6 >= 6 classes" in err and "OOD term vanishes" in err


def test_search_reads_only_val_and_class_names(folders, tmp_path, capsys):
    """`oodbench search` with an ad-hoc benchmark needs --id-val and --classes only."""
    out = tmp_path / "plan"
    assert main(["search", "--backbone", "test_clip_tiny", "--id-val", str(folders / "id_val"), "--classes",
                 str(folders / "classes.txt"), "--cache-dir", str(tmp_path / "cache"), "--ratios", "0,0.2",
                 "--topk", "2", "--modality", "vision", "--out", str(out), "-q"]) == 0
    assert (out / "plan.json").is_file()


def test_batch_size_zero_is_refused_not_replaced(folders, tmp_path, capsys):
    assert main(["run", "--post", "mcm", *_args(folders, tmp_path), "--batch-size", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_broken_cache_entry_is_one_line_naming_the_folder(folders, tmp_path, capsys):
    assert main(["run", "--post", "mcm", *_args(folders, tmp_path)]) == 0
    metas = list((tmp_path / "cache" / "features").glob("*/meta.json"))
    assert metas
    metas[0].write_text("{broken")
    capsys.readouterr()
    assert main(["run", "--post", "mcm", *_args(folders, tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"delete the folder {metas[0].parent}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
