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


def _adhoc(folders, *extra, classes="classes.txt"):
    argv = ["--id-test", str(folders / "test"), "--ood", f"o={folders / 'ood'}"]
    if classes is not None:
        argv += ["--classes", str(folders / classes)]
    return benchmark_from_args(parse(*argv, *extra))


def test_names_that_match_no_folder_are_an_error_naming_the_folders(folders):
    (folders / "classes.txt").write_text("a feline\na canine\n")  # sorted folders: cat, dog
    with pytest.raises(DataError, match=r"class name\(s\) 'a feline', 'a canine' have no folder; folder\(s\) 'cat', "
                                        r"'dog' have no class name .*--class-map FILE.*--classes-by-position") as e:
        _adhoc(folders)
    assert "\n" not in str(e.value)
    (folders / "classes.txt").write_text("dog\nkitten\n")  # one class renamed
    with pytest.raises(DataError, match=r"'kitten' have no folder; folder\(s\) 'cat' have no class name"):
        _adhoc(folders)
    (folders / "classes.txt").write_text("dog\ndog\n")  # a duplicated name
    with pytest.raises(DataError, match=r"class name\(s\) 'dog' given more than once; folder\(s\) 'cat' have no class"):
        _adhoc(folders)


def test_position_naming_only_when_asked(folders):
    (folders / "classes.txt").write_text("a feline\na canine\n")
    r = _adhoc(folders, "--classes-by-position")
    assert r.spec.class_names == ("a feline", "a canine") and r.id_val is None
    assert r.id_test.labels.tolist() == [0, 0, 0, 1, 1] and r.id_test.relpaths[0].startswith("cat/")
    assert r.spec.identity["classes"] == [["cat", "a feline"], ["dog", "a canine"]]
    assert r.spec.identity["class_rule"] == "sorted-folder position"
    (folders / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(DataError, match="2 class folders but 3 class names"):
        _adhoc(folders, "--classes-by-position")


def test_class_map_file(folders):
    (folders / "classes.txt").write_text("feline\ncanine\n")
    (folders / "map.tsv").write_text("# folder -> name\ndog\tcanine\ncat\tfeline\n")
    r = _adhoc(folders, "--class-map", str(folders / "map.tsv"))
    assert r.id_test.labels.tolist() == [0, 0, 0, 1, 1] and r.id_test.relpaths[0].startswith("cat/")
    assert r.spec.identity["classes"] == [["cat", "feline"], ["dog", "canine"]]
    assert r.spec.identity["class_rule"] == f"class map {(folders / 'map.tsv').resolve()}"
    # without --classes the map's line order is the label order
    r = _adhoc(folders, "--class-map", str(folders / "map.tsv"), classes=None)
    assert r.spec.class_names == ("canine", "feline") and r.id_test.labels.tolist() == [0, 0, 1, 1, 1]
    bad = {
        "dog\tcanine\n": r"folder\(s\) 'cat' have no class name in --class-map",
        "dog\tcanine\ncat\tcanine\n": r"folders 'dog', 'cat' are all mapped to class 'canine'",
        "dog\tcanine\ncat\tfeline\nbird\tbirdy\n": r"folder\(s\) 'bird' do not exist",
        "dog\tcanine\ncat\tkitty\n": r"'cat' are mapped to class name\(s\) 'kitty' that are not in --classes",
        "dog canine\n": r"map.tsv:1: expected 'folder<TAB>class name'",
        "dog\tcanine\ndog\tfeline\n": r"folder\(s\) 'dog' listed more than once",
    }
    for text, message in bad.items():
        (folders / "map.tsv").write_text(text)
        with pytest.raises((DataError, UserError), match=message):
            _adhoc(folders, "--class-map", str(folders / "map.tsv"))
    (folders / "map.tsv").write_text("dog\tcanine\ncat\tfeline\n")
    (folders / "classes.txt").write_text("feline\ncanine\nbird\n")
    with pytest.raises(DataError, match=r"class name\(s\) 'bird' of --classes have no folder"):
        _adhoc(folders, "--class-map", str(folders / "map.tsv"))
    with pytest.raises(UserError, match="exclude each other"):
        _adhoc(folders, "--class-map", str(folders / "map.tsv"), "--classes-by-position")


def test_imagenet_wnid_folders_with_the_registered_class_names(tmp_path, write_image):
    """The case position naming exists for: wnid folders (sorted = label order) and --classes imagenet1k."""
    import json

    from oodbench.benchmark import get_benchmark
    from oodbench.datasets.resources import LISTS_DIR

    wnids = sorted(json.loads((LISTS_DIR / "imagenet1k_val_data.json").read_text()))  # the 1,000 wnid folders
    for w in wnids:
        (tmp_path / "test" / w).mkdir(parents=True)
    write_image(tmp_path / "test" / wnids[0] / "a.jpg")
    write_image(tmp_path / "test" / wnids[657] / "b.jpg", seed=1)
    write_image(tmp_path / "ood" / "c.jpg", seed=2)
    argv = ["--id-test", str(tmp_path / "test"), "--ood", f"o={tmp_path / 'ood'}", "--classes", "imagenet1k"]
    with pytest.raises(DataError, match=r"'n01440764', 'n01443537'.* have no class name .*--classes-by-position"):
        benchmark_from_args(parse(*argv))
    r = benchmark_from_args(parse(*argv, "--classes-by-position"))
    names = get_benchmark("imagenet1k").class_names
    assert r.spec.class_names == names and r.id_test.labels.tolist() == [0, 657]
    assert r.spec.identity["classes"][0] == ["n01440764", "tench"] and r.spec.identity["classes"][657][1] == "missile"
    assert r.spec.identity["class_names_from"] == "benchmark imagenet1k"


def test_one_class_and_mismatched_val_folders_are_errors(folders, write_image):
    (folders / "one.txt").write_text("dog\n")
    with pytest.raises(UserError, match="1 class name; an ID set needs at least 2 classes"):
        _adhoc(folders, classes="one.txt")
    write_image(folders / "val" / "bird" / "0.jpg")
    with pytest.raises(DataError, match=r"--id-val .*has folder\(s\) 'bird' that are not classes"):
        _adhoc(folders, "--id-val", str(folders / "val"))


def test_adhoc_results_identify_their_data(folders):
    from oodbench.orchestration.pipeline import benchmark_identity

    r = _adhoc(folders, "--id-val", str(folders / "val"))
    ident = benchmark_identity(r)
    assert ident["folders"] == {"ID test": str((folders / "test").resolve()), "ID val": str((folders / "val").resolve()),
                                "o": str((folders / "ood").resolve())}
    assert ident["classes"] == [["dog", "dog"], ["cat", "cat"]] and ident["class_rule"] == "folder names"
    assert ident["class_names_from"] == str((folders / "classes.txt").resolve())
    # the file-list digest: sha256 over "relpath<TAB>label" lines, independent of where the folder lies
    import hashlib

    h = hashlib.sha256(b"oodbench relpaths+labels v1\n")
    for rel, lab in zip(r.id_test.relpaths, r.id_test.labels.tolist()):
        h.update(f"{rel}\t{lab}\n".encode())
    assert ident["file_lists"]["ID test"] == {"n": 5, "list_digest": h.hexdigest()[:20]}
    assert ident["file_lists"]["o"]["n"] == 3
    assert ident["splits"]["ID test"]["fingerprint"] == r.id_test.fingerprint()
    # one more image: another digest
    (folders / "test" / "cat" / "3.jpg").write_bytes((folders / "test" / "cat" / "0.jpg").read_bytes())
    assert benchmark_identity(_adhoc(folders))["file_lists"]["ID test"]["list_digest"] != h.hexdigest()[:20]


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
    with pytest.raises(DataError, match="'bird' have no folder"):
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
    assert kw == {"precision": "bf16", "decode": "pil", "batch_size": 64, "num_workers": 0, "device": "cpu",
                  "on_bad": "fail"}
    assert extraction_kwargs(p.parse_args(["--decode", "gpu", "--device", "cpu"]))["decode"] == "gpu"
    assert extraction_kwargs(p.parse_args(["--device", "cpu"]))["batch_size"] == 128
    with pytest.raises(SystemExit):  # refused while the arguments are parsed, before any heavy import
        p.parse_args(["--workers", "-1"])
    with pytest.raises(UserError, match="--workers"):  # and by the function itself (API callers)
        extraction_kwargs(argparse.Namespace(**{**vars(p.parse_args(["--device", "cpu"])), "workers": -1}))
