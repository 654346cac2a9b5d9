"""`oodbench data --help | layout | verify`: sources and layout, counts, unreadable files by path, exit status."""

import pytest

from oodbench.cli import main
from oodbench.data.verify import check_files, check_image_file
from oodbench.registry import registry



def test_data_help_says_where_data_comes_from_and_the_layout(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for needle in ("DATA/ID_ImageNet1K/test", "ILSVRC2012_img_val.tar", "pages.cs.wisc.edu/~huangrui",
                   "dtd-r1.0.1.tar.gz", "benchmark_imglist/imagenet/test_ssb_hard.txt", "ID_VOC_single",
                   "OODBENCH_DATA_ROOT", "oodbench data verify"):
        assert needle in text, needle


def test_data_layout_table(capsys):
    assert main(["data", "layout", "imagenet1k"]) == 0
    text = capsys.readouterr().out
    assert "DATA/OOD_Texture/test" in text and "5,640" in text and "50,000" in text
    assert "pkg:imagenet1k_val_data.json" in text and "prompt 'a photo of a {}'" in text


def test_check_image_file_reasons(tmp_path, write_image, write_bad_files):
    bad = write_bad_files(tmp_path)
    good = write_image(tmp_path / "good.png")
    assert check_image_file(good) is None
    assert check_image_file(bad["zero"]) == "zero-byte file"
    assert "truncated" in check_image_file(bad["truncated"])
    assert check_image_file(bad["text"]).startswith("not an image")
    assert check_image_file(bad["corrupt"]) is not None
    assert check_image_file(tmp_path / "absent.jpg") == "file not found"
    found = check_files([good, *bad.values()], workers=2)
    assert [p for p, _ in found] == [str(p) for p in bad.values()]


@pytest.fixture
def adhoc(tmp_path, write_image):
    for c in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "test" / c / f"{i}.jpg", seed=i)
    for i in range(4):
        write_image(tmp_path / "ood" / f"{i}.jpg", seed=10 + i)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    return ["--id-test", str(tmp_path / "test"), "--ood", f"far={tmp_path / 'ood'}", "--classes",
            str(tmp_path / "classes.txt")]


def test_verify_clean_adhoc_benchmark_exits_zero(adhoc, capsys):
    assert main(["data", "verify", *adhoc]) == 0
    out = capsys.readouterr().out
    assert "ID test" in out and "far" in out and "problem" not in out


def test_verify_reports_unreadable_files_by_path_and_exits_nonzero(adhoc, tmp_path, capsys, write_bad_files):
    bad = write_bad_files(tmp_path / "ood")
    assert main(["data", "verify", *adhoc]) == 1
    out = capsys.readouterr().out
    for path in bad.values():
        assert f"unreadable: {path}" in out
    assert "zero-byte file" in out and "truncated" in out
    assert main(["data", "verify", "--quick", *adhoc]) == 0  # counts only: no decoding


_PLUGIN = '''
from oodbench.datasets.base import BenchmarkSpec, SplitSpec
from oodbench.registry import register

@register("benchmarks", "tinyverify")
def tinyverify():
    """Tiny file benchmark for the verify test."""
    return BenchmarkSpec(
        name="tinyverify", description="tiny",
        id_test=SplitSpec("Tiny test", "ID_Tiny/test", expected=4, group="id", source="test"),
        id_val=None,
        ood=(SplitSpec("Tiny ood", "OOD_Tiny/test", expected=3, group="far", source="test"),),
        class_names=("a", "b"))
'''


def test_verify_registered_benchmarks_found_under_a_data_root(tmp_path, capsys, write_image):
    plugin = tmp_path / "tiny_plugin.py"
    plugin.write_text(_PLUGIN)
    root = tmp_path / "data"
    for c in ("a", "b"):
        for i in range(2):
            write_image(root / "ID_Tiny" / "test" / c / f"{i}.png", seed=i)
    for i in range(2):  # one short of the expected 3
        write_image(root / "OOD_Tiny" / "test" / "images" / f"{i}.png", seed=5 + i)
    try:
        assert main(["data", "verify", "--data-root", str(root), "--plugin", str(plugin)]) == 1
        captured = capsys.readouterr()
        assert "tinyverify" in captured.out and "Tiny ood split: expected 3 images" in captured.out
        assert "not found under" in captured.err and "imagenet1k" in captured.err
        write_image(root / "OOD_Tiny" / "test" / "images" / "2.png", seed=9)
        assert main(["data", "verify", "--data-root", str(root), "--benchmark", "tinyverify"]) == 0
    finally:
        registry("benchmarks")._entries.pop("tinyverify", None)


def test_verify_needs_a_data_root_for_file_benchmarks(capsys, monkeypatch):
    monkeypatch.delenv("OODBENCH_DATA_ROOT", raising=False)
    assert main(["data", "verify", "--benchmark", "voc"]) == 2
    assert "pass --data-root DIR" in capsys.readouterr().err


def test_restore_copies_the_listed_files_then_verify_counts_them(tmp_path, capsys, write_image):
    import json

    from oodbench.datasets import get_benchmark
    from oodbench.data.resolve import inspect_splits
    from oodbench.datasets.resources import LISTS_DIR

    listing = json.loads((LISTS_DIR / "voc_val_data.json").read_text())
    src = tmp_path / "ID_VOC_single"
    for i, (cls, files) in enumerate(listing.items()):
        for f in files:
            write_image(src / cls / f, seed=i)
    write_image(src / "dog" / "2099_000000.jpg")  # not listed: stays behind
    root = tmp_path / "data"
    assert main(["data", "restore", "voc", "--from", str(src), "--data-root", str(root)]) == 1  # test files absent
    out = capsys.readouterr().out
    assert "VOC val: 94 of 94 listed files" in out and "VOC test: 0 of 906" in out
    assert sum(1 for _ in (root / "ID_VOC" / "val").rglob("*.jpg")) == 94
    checks = {c.split.name: c for c in inspect_splits(get_benchmark("voc"), root)}
    assert checks["VOC val"].problem is None and checks["VOC val"].found == 94
    assert main(["data", "restore", "imagenet1k", "--from", str(tmp_path / "nope"), "--data-root", str(root)]) == 2
