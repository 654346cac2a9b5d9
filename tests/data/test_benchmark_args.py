"""`--benchmark` / `--data-root` / ad-hoc folder flags -> a resolved benchmark."""

import argparse

import pytest

from oodbench.cli.benchmark_args import add_benchmark_args, benchmark_from_args
from oodbench.errors import DataError, UserError



def parse(*argv):
    p = argparse.ArgumentParser()
    add_benchmark_args(p)
    return p.parse_args(list(argv))


@pytest.fixture
def folders(tmp_path, write_image):
    for c, n in (("dog", 2), ("cat", 3)):
        for i in range(n):
            write_image(tmp_path / "test" / c / f"{i}.jpg", seed=i + 10 * n)
            write_image(tmp_path / "val" / c / f"{i}.jpg", seed=i + 20 * n)
    for i in range(3):
        write_image(tmp_path / "ood" / f"{i}.png", seed=100 + i)
        write_image(tmp_path / "near" / "sub" / f"{i}.png", seed=200 + i)
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    return tmp_path


def test_default_is_the_embedded_digits_benchmark(monkeypatch):
    monkeypatch.delenv("OODBENCH_DATA_ROOT", raising=False)
    r = benchmark_from_args(parse())
    assert r.spec.name == "digits" and len(r.id_test) == r.spec.id_test.expected


def test_adhoc_folders_with_class_names_as_folder_names(folders):
    args = parse("--id-test", str(folders / "test"), "--id-val", str(folders / "val"), "--ood", f"o={folders / 'ood'}",
                 "--near-ood", f"n={folders / 'near'}", "--classes", str(folders / "classes.txt"),
                 "--prompt", "a picture of a {}")
    r = benchmark_from_args(args)
    assert r.spec.class_names == ("dog", "cat") and r.spec.prompt == "a picture of a {}"
    # label i = the folder named like line i of the classes file (not the sorted folder order)
    assert r.id_test.labels.tolist() == [0, 0, 1, 1, 1] and r.id_test.relpaths[0].startswith("dog/")
    assert r.id_val.labels.tolist() == [0, 0, 1, 1, 1]
    assert r.groups == {"o": "far", "n": "near"} and len(r.ood["n"]) == 3 and (r.ood["o"].labels == -1).all()


def test_adhoc_folders_named_by_position_when_names_differ(folders):
    (folders / "classes.txt").write_text("a feline\na canine\n")  # sorted folders: cat, dog
    r = benchmark_from_args(parse("--id-test", str(folders / "test"), "--ood", f"o={folders / 'ood'}",
                                  "--classes", str(folders / "classes.txt")))
    assert r.spec.class_names == ("a feline", "a canine") and r.id_val is None
    assert r.id_test.labels.tolist() == [0, 0, 0, 1, 1] and r.id_test.relpaths[0].startswith("cat/")


@pytest.mark.parametrize("argv, match", [
    (["--id-test", "T", "--ood", "o=O"], r"missing --classes"),
    (["--id-test", "T", "--classes", "C"], r"missing --ood NAME=DIR"),
    (["--benchmark", "voc", "--id-test", "T"], r"cannot be combined with the ad-hoc flags \(--id-test\)"),
    (["--data-root", "/x"], r"--data-root needs --benchmark NAME"),
    (["--benchmark", "imagenet1k"], r"reads images from a data root: pass --data-root DIR"),
])
def test_flag_errors_are_one_line(argv, match, monkeypatch):
    monkeypatch.delenv("OODBENCH_DATA_ROOT", raising=False)
    with pytest.raises(UserError, match=match):
        benchmark_from_args(parse(*argv))


def test_adhoc_data_errors(folders):
    (folders / "classes.txt").write_text("dog\ncat\nbird\n")
    base = ["--id-test", str(folders / "test"), "--ood", f"o={folders / 'ood'}", "--classes", str(folders / "classes.txt")]
    with pytest.raises(DataError, match="2 class folders but 3 class names"):
        benchmark_from_args(parse(*base))
    with pytest.raises(DataError, match="--ood o: .* is not a folder"):
        benchmark_from_args(parse("--id-test", str(folders / "test"), "--ood", f"o={folders / 'missing'}",
                                  "--classes", "voc"))
    with pytest.raises(UserError, match="expects NAME=DIR"):
        benchmark_from_args(parse("--id-test", str(folders / "test"), "--ood", "nodir", "--classes", "voc"))
    with pytest.raises(UserError, match=r"--prompt must contain"):
        benchmark_from_args(parse(*base[:-1], str(folders / "classes.txt"), "--prompt", "no slot"))


def test_registered_benchmark_on_env_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError, match="VOC test split: expected 906 images listed in pkg:voc_test_data.json"):
        benchmark_from_args(parse("--benchmark", "voc"))


def test_extraction_options_become_extractor_arguments():
    from oodbench.cli.benchmark_args import add_extraction_args, extraction_kwargs

    p = argparse.ArgumentParser()
    add_benchmark_args(p)
    add_extraction_args(p)
    p.add_argument("--device", default="auto")
    kw = extraction_kwargs(p.parse_args(["--precision", "bf16", "--extract-batch-size", "64", "--workers", "0",
                                         "--on-bad", "fail", "--device", "cpu"]))
    assert kw == {"precision": "bf16", "batch_size": 64, "num_workers": 0, "device": "cpu", "on_bad": "fail"}
    assert extraction_kwargs(p.parse_args(["--device", "cpu"]))["batch_size"] == 128
    with pytest.raises(UserError, match="--workers"):
        extraction_kwargs(p.parse_args(["--workers", "-1"]))
