"""Readers of ImageFolder trees, OpenOOD imglists and SeTAR JSON lists, against torchvision and hand-made lists."""

import json
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import ImageFolder

from oodbench.data.readers import parse_imglist, read_imagefolder, read_imglist, read_jsonlist
from oodbench.errors import DataError



def _as_pairs(src):
    return [(str(src.path(i)), int(src.labels[i])) for i in range(len(src))]


def test_imagefolder_matches_torchvision_order_and_labels(image_tree):
    ref = ImageFolder(str(image_tree))
    src = read_imagefolder(image_tree, "tree")
    assert _as_pairs(src) == [(p, t) for p, t in ref.samples]
    assert src.classes == ref.classes == ["ant", "cat", "dog"]
    assert src.load(0).mode == "RGB"


def test_imagefolder_explicit_class_order_remaps_labels(image_tree):
    src = read_imagefolder(image_tree, "tree", classes=["dog", "ant", "cat"])
    by_folder = {Path(src.relpaths[i]).parts[0]: int(src.labels[i]) for i in range(len(src))}
    assert by_folder == {"dog": 0, "ant": 1, "cat": 2}
    assert src.relpaths[0].startswith("dog/")  # files follow the label order
    with pytest.raises(DataError, match="zebra"):
        read_imagefolder(image_tree, "tree", classes=["dog", "zebra"])


def test_imagefolder_ood_labels_and_top_level_images(image_tree, write_image):
    write_image(image_tree / "loose.png", seed=50)
    src = read_imagefolder(image_tree, "ood", ood=True)
    assert (src.labels == -1).all()
    assert src.relpaths[0] == "loose.png" and len(src) == 8
    # as an ID split, loose files are ignored exactly like ImageFolder does
    assert len(read_imagefolder(image_tree, "id")) == 7


def test_hidden_and_non_image_files_are_left_out(tmp_path, write_image):
    write_image(tmp_path / "images" / "ok.jpg")
    write_image(tmp_path / "images" / "._ok.jpg")  # macOS resource fork copy
    (tmp_path / "images" / ".directory").write_text("x")
    (tmp_path / "images" / "readme.txt").write_text("x")
    src = read_imagefolder(tmp_path, "set", ood=True)
    assert src.relpaths == ["images/ok.jpg"]


def test_missing_folder_gives_empty_source(tmp_path):
    assert len(read_imagefolder(tmp_path / "absent", "x")) == 0


def test_imglist_parsing_first_space_labels_and_errors(tmp_path):
    paths, labels = parse_imglist("a/x.jpg 3\n\n  b/y.JPEG -1 \nc/z.png 0\n", "l.txt")
    assert paths == ["a/x.jpg", "b/y.JPEG", "c/z.png"] and labels == [3, -1, 0]
    with pytest.raises(DataError, match=r"l\.txt:2: expected"):
        parse_imglist("a.jpg 1\nb.jpg one\n", "l.txt")
    with pytest.raises(DataError, match="absolute path"):
        parse_imglist("/abs/a.jpg 1\n", "l.txt")


def test_read_imglist_relative_to_data_dir_and_ood_forced(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("ssb/n1/a.jpg 5\nssb/n2/b.jpg 7\n")
    src = read_imglist(lst, tmp_path / "images_largescale", "ssb", ood=True)
    assert src.labels.tolist() == [-1, -1]
    assert src.path(1) == tmp_path / "images_largescale" / "ssb/n2/b.jpg"
    assert read_imglist(lst, tmp_path, "id").labels.tolist() == [5, 7]
    with pytest.raises(DataError, match="cannot read image list"):
        read_imglist(tmp_path / "nope.txt", tmp_path, "x")


def test_jsonlist_matches_imagefolder_of_the_restored_tree(tmp_path, write_image):
    listing = {"n02": ["b.JPEG", "a.JPEG"], "n01": ["z.JPEG"], "n03": [], "images/banded": ["t1.jpg"]}
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps(listing))
    split = tmp_path / "split"
    seed = 0
    for folder, files in listing.items():
        for f in files:
            write_image(split / folder / f, seed=seed)
            seed += 1
    ref = ImageFolder(str(split))
    src = read_jsonlist(lst, split, "s")
    assert _as_pairs(src) == [(p, t) for p, t in ref.samples]
    assert src.classes == ["images", "n01", "n02"]  # the empty n03 is dropped, as SeTAR's checker does


def test_jsonlist_explicit_classes_and_ood(tmp_path):
    lst = tmp_path / "voc.json"
    lst.write_text(json.dumps({"dog": ["1.jpg"], "bird": ["2.jpg", "0.jpg"]}))
    src = read_jsonlist(lst, tmp_path, "voc", classes=["dog", "cat", "bird"])
    assert src.relpaths == ["dog/1.jpg", "bird/0.jpg", "bird/2.jpg"]
    assert src.labels.tolist() == [0, 2, 2]
    assert (read_jsonlist(lst, tmp_path, "o", ood=True).labels == -1).all()
    with pytest.raises(DataError, match="not classes of the benchmark"):
        read_jsonlist(lst, tmp_path, "voc", classes=["dog"])
    lst.write_text("[1, 2]")
    with pytest.raises(DataError, match="must map folder names"):
        read_jsonlist(lst, tmp_path, "voc")


def test_fingerprint_changes_with_label_path_or_size(image_tree, write_image):
    a = read_imagefolder(image_tree, "t")
    b = read_imagefolder(image_tree, "t", classes=["cat", "ant", "dog"])  # same files, other labels
    assert a.fingerprint() != b.fingerprint()
    c = read_imagefolder(image_tree, "t")
    before = c.fingerprint()
    write_image(image_tree / "dog" / "c.jpeg", seed=99, size=20)  # same path, new content and size
    assert read_imagefolder(image_tree, "t").fingerprint() != before
    assert read_imagefolder(image_tree, "t").fingerprint() == read_imagefolder(image_tree, "u").fingerprint()
    assert np.array_equal(a.labels, c.labels)
