"""Every registered benchmark spec, the shipped class names and the shipped SeTAR split lists."""

import json
import re

import pytest

from oodbench.datasets import BenchmarkSpec, get_benchmark
from oodbench.datasets.resources import CLASSNAMES_DIR, LISTS_DIR, read_classnames
from oodbench.errors import UserError
from oodbench.registry import names

VOC_ORDER = ["aeroplane", "bicycle", "bird", "boat", "bottle", "cow", "diningtable", "dog", "horse", "motorbike",
             "sheep", "sofa", "train", "tvmonitor"]


@pytest.mark.parametrize("name", names("benchmarks"))
def test_every_registered_spec_is_consistent(name):
    spec = get_benchmark(name)
    assert isinstance(spec, BenchmarkSpec) and spec.name == name
    assert len(spec.class_names) >= 2 and spec.prompt.count("{}") == 1
    roles = spec.split_specs()
    split_names = [s.name for _, s in roles]
    assert len(split_names) == len(set(split_names)), "split names must be unique"
    for role, s in roles:
        assert s.group in ("id", "near", "far") and (s.group == "id") == role.is_id
        assert s.format in ("imagefolder", "imglist", "jsonlist", "array")
        assert s.source, f"{s.name} must say where its images come from"
        if s.list_file and s.list_file.startswith("pkg:"):
            assert spec.list_path(s.list_file, None).is_file()
        if s.classes is not None:
            assert len(s.classes) == len(spec.class_names)
    assert spec.family in ("", "imagenet", "voc", "digits")


def test_paper_benchmarks_counts_prompt_and_family():
    im = get_benchmark("imagenet1k")
    assert (im.id_test.path, im.id_test.expected) == ("ID_ImageNet1K/test", 50_000)
    assert (im.id_val.path, im.id_val.expected) == ("ID_ImageNet1K/val", 1_000)
    assert [(s.name, s.path, s.expected) for s in im.ood] == [
        ("iNaturalist", "OOD_iNaturalist/test", 10_000), ("SUN", "OOD_Sun/test", 10_000),
        ("Places", "OOD_Places/test", 10_000), ("Texture", "OOD_Texture/test", 5_640)]
    assert im.prompt == "a photo of a {}"  # no trailing period, as the official code
    assert im.family == "imagenet"
    voc = get_benchmark("voc")
    assert list(voc.class_names) == VOC_ORDER and list(voc.id_test.classes) == VOC_ORDER
    assert (voc.id_val.expected, voc.id_test.expected) == (94, 906)
    assert [(s.name, s.expected) for s in voc.ood][-2:] == [("ImageNet22K", 18_335), ("COCO", 1_000)]
    assert voc.family == "voc"
    ssb = get_benchmark("ssb_hard")
    assert [(s.name, s.group, s.expected, s.format) for s in ssb.ood] == [("ssb_hard", "near", 49_000, "imglist")]
    oo = get_benchmark("openood_imagenet1k")
    assert [s.name for s in oo.ood if s.group == "near"] == ["ssb_hard", "ninco"]
    assert [s.name for s in oo.ood if s.group == "far"] == ["inaturalist", "textures", "openimage_o"]
    assert [s.list_file for s in oo.ood_val] == ["benchmark_imglist/imagenet/val_openimage_o.txt"]
    assert oo.id_test.list_file.endswith("test_imagenet.txt") and oo.id_val.list_file.endswith("val_imagenet.txt")


def test_aliases_resolve_to_the_same_benchmark():
    assert get_benchmark("imagenet").name == "imagenet1k" and get_benchmark("pascal-voc").name == "voc"


def test_imagenet_classnames_equal_open_clip_list():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    got = read_classnames("imagenet1k")
    assert list(got) == list(IMAGENET_CLASSNAMES) and len(got) == 1000
    assert got[21] == "kite (bird of prey)" and got[657] == got[744] == "missile"
    assert (CLASSNAMES_DIR / "imagenet1k.txt").read_text().count("\n") == 1000


def test_read_classnames_file_comments_and_errors(tmp_path):
    from oodbench.data.classnames import read_classnames as read_file, resolve_classnames

    f = tmp_path / "c.txt"
    f.write_text("# my classes\ncat\n\n dog \n")
    assert read_file(f) == ("cat", "dog")
    assert resolve_classnames(str(f)) == (("cat", "dog"), str(f.resolve()))
    # a registered benchmark's name gives that benchmark's class names, found through the registry
    names, where = resolve_classnames("voc")
    assert list(names) == VOC_ORDER and where == "benchmark voc"
    assert resolve_classnames("imagenet")[0] == get_benchmark("imagenet1k").class_names  # aliases too
    with pytest.raises(UserError, match=r"no such file, and no registered benchmark .* one of: .*imagenet1k.*voc"):
        resolve_classnames(str(tmp_path / "missing.txt"))
    (tmp_path / "e.txt").write_text("\n# nothing\n")
    with pytest.raises(UserError, match="holds no class name"):
        read_file(tmp_path / "e.txt")


def test_engine_never_imports_the_datasets_plugin():
    """`oodbench/data` reaches benchmarks (and their class names) only through the registry."""
    import ast
    from pathlib import Path

    import oodbench.data

    for path in Path(oodbench.data.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(m == "oodbench.datasets" or m.startswith("oodbench.datasets.") for m in mods), path.name


def test_shipped_imagenet_val_list_one_train_image_per_class():
    from timm.data import ImageNetInfo

    data = json.loads((LISTS_DIR / "imagenet1k_val_data.json").read_text())
    info = ImageNetInfo()
    assert sorted(data) == sorted(info.index_to_label_name(i) for i in range(1000))
    for wnid, files in data.items():
        assert len(files) == 1 and re.fullmatch(rf"{wnid}_\d+\.JPEG", files[0])  # a *train* file name


def test_shipped_voc_lists_are_a_disjoint_split_of_the_14_classes():
    val = json.loads((LISTS_DIR / "voc_val_data.json").read_text())
    test = json.loads((LISTS_DIR / "voc_test_data.json").read_text())
    assert sorted(val) == sorted(test) == sorted(VOC_ORDER)
    files_val = {f for v in val.values() for f in v}
    files_test = {f for v in test.values() for f in v}
    assert len(files_val) == sum(map(len, val.values())) == 94
    assert len(files_test) == sum(map(len, test.values())) == 906
    assert not files_val & files_test
    assert all(re.fullmatch(r"20(08|09|10|11)_\d{6}\.jpg", f) for f in files_val | files_test)
    for cls in VOC_ORDER:  # about 1:9 per class
        assert 1 <= len(val[cls]) <= max(1, round(0.12 * (len(val[cls]) + len(test[cls]))))
