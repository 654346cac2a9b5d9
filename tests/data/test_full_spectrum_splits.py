"""Full-spectrum splits (covariate-shifted ID scored as ID), class-subset ImageFolder trees, OpenOOD v1.5 list
counts, and file-list checksums: pinned ones refuse another list, every list's SHA-256 is recorded."""

import dataclasses
import hashlib

import pytest

from oodbench.benchmark import Role, SplitSpec, get_benchmark
from oodbench.cli import main
from oodbench.data.readers import read_imagefolder
from oodbench.data.resolve import resolve
from oodbench.datasets.fullspectrum_splits import IMAGENET_A, IMAGENET_R, IMAGENET_SKETCH, IMAGENET_V2, IMAGENET_WNIDS
from oodbench.errors import DataError
from oodbench.orchestration.pipeline import benchmark_identity


def test_the_full_spectrum_benchmarks_add_four_csid_sets_to_their_parents():
    for name, parent in (("openood_imagenet1k_fs", "openood_imagenet1k"), ("imagenet1k_fs", "imagenet1k")):
        fs, base = get_benchmark(name), get_benchmark(parent)
        assert [s.name for s in fs.csid] == ["ImageNet-V2", "ImageNet-R", "ImageNet-Sketch", "ImageNet-A"]
        assert [s.expected for s in fs.csid] == [10_000, 30_000, 50_889, 7_500]
        assert [(r, s) for r, s in fs.split_specs() if r != Role.CSID] == base.split_specs()
        assert {r for r, s in fs.split_specs() if s in fs.csid} == {Role.CSID} and Role.CSID.is_id
    oo = {s.name: s.expected for s in get_benchmark("openood_imagenet1k").ood}
    assert oo == {"ssb_hard": 49_000, "ninco": 5_879, "inaturalist": 10_000, "textures": 5_160,
                  "openimage_o": 15_869}


def test_wnid_order_matches_openood_labels():
    # labels printed in OpenOOD's own test_imagenet_r.txt for three ImageNet-R folders
    assert len(IMAGENET_WNIDS) == 1000 and list(IMAGENET_WNIDS) == sorted(IMAGENET_WNIDS)
    assert [IMAGENET_WNIDS.index(w) for w in ("n02607072", "n03498962", "n01770393")] == [393, 596, 71]
    assert IMAGENET_WNIDS[0] == "n01440764"  # tench, label 0 of ILSVRC2012


def test_a_class_subset_tree_is_labelled_by_the_full_class_order(tmp_path, write_image):
    classes = ("a", "b", "c", "d", "e")
    for c, n in (("b", 2), ("e", 1)):
        for i in range(n):
            write_image(tmp_path / c / f"{i}.jpg", seed=i)
    src = read_imagefolder(tmp_path, "subset", classes=classes, class_subset=True)
    assert src.relpaths == ["b/0.jpg", "b/1.jpg", "e/0.jpg"] and src.labels.tolist() == [1, 1, 4]
    with pytest.raises(DataError, match="missing"):  # without class_subset every folder must exist
        read_imagefolder(tmp_path, "subset", classes=classes)
    write_image(tmp_path / "zzz" / "0.jpg")
    with pytest.raises(DataError, match=r"zzz .* not among the 5 classes"):
        read_imagefolder(tmp_path, "subset", classes=classes, class_subset=True)


def _mini_fs(root, write_image, pin=None):
    """openood_imagenet1k_fs with its real split formats and folders, counts cut to what the test writes."""
    spec = get_benchmark("openood_imagenet1k_fs")
    lists = root / "benchmark_imglist" / "imagenet"
    lists.mkdir(parents=True)

    def imglist(split, rows):
        for rel, _ in rows:
            write_image(root / split.path / rel, seed=len(rel))
        (root / split.list_file).write_text("".join(f"{r} {lab}\n" for r, lab in rows))
        return dataclasses.replace(split, expected=len(rows))

    id_test = imglist(spec.id_test, [("imagenet_1k/val/x0.JPEG", 0), ("imagenet_1k/val/x1.JPEG", 3)])
    ood = imglist(spec.ood[1], [("ninco/k/a.jpg", -1), ("ninco/k/b.jpg", -1)])
    v2 = imglist(IMAGENET_V2, [("imagenet_v2/7/a.jpeg", 7), ("imagenet_v2/9/b.jpeg", 9)])
    r = imglist(IMAGENET_R, [("imagenet_r/n02607072/art_0.jpg", 393)])
    for w in IMAGENET_WNIDS:  # ImageNet-Sketch has every wnid folder
        (root / IMAGENET_SKETCH.path / w).mkdir(parents=True)
    write_image(root / IMAGENET_SKETCH.path / "n01440764" / "sketch_0.JPEG")
    write_image(root / IMAGENET_A.path / "n01770393" / "0.jpg")
    write_image(root / IMAGENET_A.path / "n03498962" / "1.jpg")
    csid = (v2, dataclasses.replace(r, list_sha256=pin), dataclasses.replace(IMAGENET_SKETCH, expected=1),
            dataclasses.replace(IMAGENET_A, expected=2))
    return dataclasses.replace(spec, id_test=id_test, id_val=None, ood=(ood,), ood_val=(), csid=csid)


def test_full_spectrum_splits_resolve_with_imagenet_labels(tmp_path, write_image):
    spec = _mini_fs(tmp_path, write_image)
    res = resolve(spec, tmp_path)
    assert list(res.csid) == ["ImageNet-V2", "ImageNet-R", "ImageNet-Sketch", "ImageNet-A"]
    labels = {n: s.labels.tolist() for n, s in res.csid.items()}
    assert labels == {"ImageNet-V2": [7, 9], "ImageNet-R": [393], "ImageNet-Sketch": [0], "ImageNet-A": [71, 596]}
    assert [s.role for s in res.splits()] == [Role.ID_TEST, Role.OOD] + [Role.CSID] * 4
    digest = hashlib.sha256((tmp_path / IMAGENET_R.list_file).read_bytes()).hexdigest()
    assert res.list_digests["ImageNet-R"] == digest
    ident = benchmark_identity(res)["splits"]
    assert ident["ImageNet-R"]["list_sha256"] == digest and ident["ImageNet-R"]["role"] == "csid"
    assert "list_sha256" not in ident["ImageNet-A"]  # an ImageFolder tree has no list


def test_a_pinned_list_checksum_refuses_another_list(tmp_path, write_image, capsys):
    body = "imagenet_r/n02607072/art_0.jpg 393\n"
    good = hashlib.sha256(body.encode()).hexdigest()
    resolve(_mini_fs(tmp_path / "a", write_image, pin=good), tmp_path / "a")  # the pinned list: accepted
    spec = _mini_fs(tmp_path / "b", write_image, pin="0" * 64)
    with pytest.raises(DataError) as info:
        resolve(spec, tmp_path / "b")
    msg = str(info.value)
    assert "\n" not in msg and "ImageNet-R split" in msg and good[:16] in msg and "0" * 16 in msg


def test_data_layout_and_help_name_the_full_spectrum_sources(capsys):
    assert main(["data", "layout", "openood_imagenet1k_fs"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("csid", "50,889", "7,500", "imagenet-a.tar", "HaohanWang/ImageNet-Sketch", "imagenet_v2.zip",
                   "1EzjMN2gq-bVV7lg-MEAdeuBuz-7jbGYU", "5,879", "5,160"):
        assert needle in text, needle
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    assert "DATA/imagenet-a/<wnid>/" in " ".join(capsys.readouterr().out.split())


def test_a_split_spec_with_a_class_subset_needs_the_class_order():
    with pytest.raises(ValueError, match="class_subset"):
        SplitSpec("x", "x", class_subset=True)


def test_digits_fs_adds_inverted_and_shifted_id_test_images():
    res = get_benchmark("digits_fs").resolve()
    base = get_benchmark("digits").resolve()
    assert base.csid == {} and [s.name for s in res.splits()][:-2] == [s.name for s in base.splits()]
    inv, shifted = res.csid["digits 0-5 (inverted)"], res.csid["digits 0-5 (shifted)"]
    x = base.id_test.images.astype(int)
    assert (inv.images.astype(int) == 255 - x).all()
    assert (shifted.images[:, 6:, 6:] == base.id_test.images[:, :-6, :-6]).all()
    assert (inv.labels == base.id_test.labels).all() and (shifted.labels == base.id_test.labels).all()
