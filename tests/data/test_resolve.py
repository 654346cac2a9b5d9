"""Resolving benchmark specs on a data root: counts, one-line errors, missing listed files, in-memory specs."""

import json
import logging

import numpy as np
import pytest

from oodbench.datasets import BenchmarkSpec, SplitSpec, get_benchmark, resolve
from oodbench.data.resolve import inspect_splits
from oodbench.errors import DataError, UserError


CLASSES = ("ant", "bee", "cat")


def make_root(root, write_image, n_test=2, val_files=None, ood_lines=None):
    """A small data root in both layouts: ImageFolder ID test, JSON-listed ID val, imglist and folder OOD."""
    seed = 0
    for c in CLASSES:
        for i in range(n_test):
            write_image(root / "ID_Mini" / "test" / c / f"{c}{i}.jpg", seed=seed)
            seed += 1
    val_files = val_files or {c: [f"{c}_v.jpg"] for c in CLASSES}
    for c, files in val_files.items():
        for f in files:
            write_image(root / "ID_Mini" / "val" / c / f, seed=seed)
            seed += 1
    for i in range(4):
        write_image(root / "OOD_Far" / "test" / "images" / f"f{i}.png", seed=seed + i)
    for i in range(3):
        write_image(root / "images_largescale" / "near" / "n1" / f"x{i}.jpg", seed=seed + 10 + i)
    lines = ood_lines if ood_lines is not None else [f"near/n1/x{i}.jpg 7" for i in range(3)]
    (root / "lists").mkdir(exist_ok=True)
    (root / "lists" / "near.txt").write_text("\n".join(lines) + "\n")
    (root / "lists" / "val.json").write_text(json.dumps({c: [f"{c}_v.jpg"] for c in CLASSES}))


def mini_spec(near_expected=3, test_expected=6) -> BenchmarkSpec:
    return BenchmarkSpec(
        name="mini", description="test benchmark",
        id_test=SplitSpec("Mini test", "ID_Mini/test", expected=test_expected, group="id", source="test"),
        id_val=SplitSpec("Mini val", "ID_Mini/val", format="jsonlist", list_file="lists/val.json", expected=3,
                         group="id", source="test"),
        ood=(SplitSpec("Near", "images_largescale", format="imglist", list_file="lists/near.txt",
                       expected=near_expected, group="near", source="test"),
             SplitSpec("Far", "OOD_Far/test", expected=4, group="far", source="test")),
        class_names=CLASSES)


def test_resolve_complete_root_gives_sources_labels_and_counts(tmp_path, write_image):
    make_root(tmp_path, write_image)
    r = resolve(mini_spec(), tmp_path)
    assert r.id_test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert r.id_val.labels.tolist() == [0, 1, 2] and r.fit_split().source is r.id_val
    assert list(r.ood) == ["Near", "Far"] and r.groups == {"Near": "near", "Far": "far"}
    assert (r.ood["Near"].labels == -1).all() and len(r.ood["Far"]) == 4  # OOD labels forced to -1
    assert r.counts["Mini test"] == {"role": "id_test", "group": "id", "expected": 6, "listed": 6, "found": 6,
                                     "missing": 0}
    assert r.ood["Near"].load(2).size == (12, 12)


def test_missing_split_fails_with_one_actionable_line(tmp_path):
    with pytest.raises(DataError) as info:
        resolve(get_benchmark("imagenet1k"), tmp_path)
    msg = str(info.value)
    assert msg == (f"ImageNet-1K test split: expected 50,000 images under {tmp_path}/ID_ImageNet1K/test, found 0 "
                   "— see `oodbench data layout imagenet1k`")
    assert "\n" not in msg


def test_short_split_and_wrong_class_count_fail(tmp_path, write_image):
    make_root(tmp_path, write_image)
    with pytest.raises(DataError, match=r"Mini test split: expected 8 images under .*found 6"):
        resolve(mini_spec(test_expected=8), tmp_path)
    (tmp_path / "ID_Mini" / "test" / "dog").mkdir()
    write_image(tmp_path / "ID_Mini" / "test" / "dog" / "d.jpg")
    with pytest.raises(DataError, match="4 class folders .* 3 class names"):
        resolve(mini_spec(test_expected=7), tmp_path)


def test_missing_list_file_is_reported(tmp_path, write_image):
    make_root(tmp_path, write_image)
    (tmp_path / "lists" / "near.txt").unlink()
    with pytest.raises(DataError, match=r"Near split: file list .*near\.txt not found — see `oodbench data --help`"):
        resolve(mini_spec(), tmp_path)


def test_listed_but_absent_files_skip_or_fail(tmp_path, caplog, write_image):
    make_root(tmp_path, write_image, ood_lines=[f"near/n1/x{i}.jpg -1" for i in range(3)] + ["near/n1/gone.jpg -1"])
    with pytest.raises(DataError, match="Near split: expected 4 images listed in lists/near.txt under .*, found 3"):
        resolve(mini_spec(near_expected=4), tmp_path)  # an expected count: short is always fatal
    with caplog.at_level(logging.WARNING, logger="oodbench"):
        r = resolve(mini_spec(near_expected=None), tmp_path, on_bad="skip")
    assert len(r.ood["Near"]) == 3 and r.skipped["Near"] == [str(tmp_path / "images_largescale/near/n1/gone.jpg")]
    assert r.counts["Near"]["missing"] == 1 and "gone.jpg" in caplog.text
    with pytest.raises(DataError, match="1 listed file.* missing, e.g. .*gone.jpg .* --on-bad skip"):
        resolve(mini_spec(near_expected=None), tmp_path, on_bad="fail")


def test_inspect_never_raises_and_reports_every_split(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.json").write_text(json.dumps({c: [f"{c}_v.jpg"] for c in CLASSES}))
    checks = inspect_splits(mini_spec(), tmp_path)
    assert [c.split.name for c in checks] == ["Mini test", "Mini val", "Near", "Far"]
    assert all(c.problem for c in checks)
    assert checks[1].missing and checks[1].found == 0  # the JSON list names files that are not there


def test_data_root_rules(tmp_path):
    with pytest.raises(UserError, match="pass --data-root DIR"):
        resolve(get_benchmark("voc"), None)
    with pytest.raises(DataError, match="is not a folder"):
        resolve(get_benchmark("voc"), tmp_path / "nope")
    with pytest.raises(UserError, match="on_bad"):
        resolve(get_benchmark("voc"), tmp_path, on_bad="ignore")


def test_in_memory_benchmark_resolves_without_data_root():
    r = resolve(get_benchmark("digits"))
    spec = r.spec
    assert not spec.needs_data_root and get_benchmark("imagenet1k").needs_data_root
    assert len(r.id_test) == spec.id_test.expected
    assert all(len(r.ood[s.name]) == s.expected for s in spec.ood)
    assert np.all(r.ood[spec.ood[0].name].labels == -1)


def test_an_id_split_needs_two_classes(tmp_path, write_image):
    """With one class, MCM / softmax scores are constant (AUROC 50, FPR95 100) and accuracy trivially 100%."""
    write_image(tmp_path / "ID" / "ant" / "a.jpg")
    write_image(tmp_path / "OOD" / "b.jpg", seed=1)
    spec = BenchmarkSpec(name="one", description="one class", id_test=SplitSpec("One test", "ID", group="id"),
                         id_val=None, ood=(SplitSpec("Far", "OOD"),), class_names=("ant",))
    with pytest.raises(DataError, match="One test split: benchmark 'one' has 1 class name; an ID set needs at least 2"):
        resolve(spec, tmp_path)
