"""Table 7's official classification protocol (SeTAR ``test_classify.py``): label lists shipped with the ImageNet-1K
benchmark, and the protocol run by the pipeline on a tiny CLIP over images this test writes, against a by-hand
computation with the model (prompts 'a photo of a {name}' over the list's distinct names, argmax, accuracy over
the listed images)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.benchmark import BenchmarkSpec, SplitSpec
from oodbench.classify import LabelList, classify_value, official_accuracy


def _write_list(path, lines):
    path.write_bytes(gzip.compress("".join(f"{k}\t{v}\n" for k, v in lines).encode()))
    return str(path)


def test_label_list_reads_exact_paths_and_folder_keys(tmp_path):
    labels = LabelList.read(_write_list(tmp_path / "l.tsv.gz", [("n01/", "crane"), ("n02/", "crane"),
                                                                  ("images/a.jpg", "marsh")]))
    assert labels.name_of("n01/x.JPEG") == "crane" and labels.name_of("n02/sub/y.JPEG") == "crane"
    assert labels.name_of("images/a.jpg") == "marsh" and labels.name_of("images/b.jpg") is None
    assert labels.names() == ["crane", "marsh"]  # distinct names: two classes sharing one name count once


def test_the_shipped_label_lists_hold_the_official_counts():
    """imagenet1k's spec declares the four lists (Table 7's columns); counts from the official files: ImageNet-1K
    1,000 wnid folders with 998 distinct names (crane, maillot shared), SUN 9,639 images / 44 names, Places 10,000 /
    43, Texture 5,640 / 47."""
    from oodbench.benchmark import get_benchmark

    spec = get_benchmark("imagenet1k")
    assert set(spec.classify_labels) == {"ImageNet-1K test", "SUN", "Places", "Texture"}
    counts = {}
    for split, file in spec.classify_labels.items():
        labels = LabelList.read(file)
        counts[split] = (len(labels.exact), len(labels.folders), len(labels.names()))
    assert counts == {"ImageNet-1K test": (0, 1000, 998), "SUN": (9639, 0, 44), "Places": (10000, 0, 43),
                      "Texture": (5640, 0, 47)}
    imagenet = LabelList.read(spec.classify_labels["ImageNet-1K test"])
    assert imagenet.name_of("n02892201/ILSVRC2012_val_00006299.JPEG") == "brass"  # an entry of the official file
    assert imagenet.name_of("n03126707/x.JPEG") == imagenet.name_of("n02012849/x.JPEG") == "crane"


def test_official_accuracy_by_hand():
    image = np.array([[1, 0], [0, 1], [1, 0.2], [0.3, 1]], np.float32)
    text = {"a photo of a cat": [1, 0], "a photo of a dog": [0, 1]}
    labels = LabelList({"x/1.png": "cat", "x/2.png": "cat", "x/3.png": "dog"}, {})
    got = official_accuracy(image, ["x/1.png", "x/2.png", "x/3.png", "x/4.png"], labels,
                            lambda prompts: np.array([text[p] for p in prompts], np.float32))
    # x/1 -> cat (right), x/2 -> dog (wrong), x/3 -> cat (wrong); x/4 is not listed
    assert got == {"accuracy": pytest.approx(1 / 3), "n": 3, "names": 2}


def _png(path, colour, rng):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.asarray(colour)[None, None, :] + rng.integers(-40, 41, (40, 40, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def test_the_pipeline_records_the_official_protocol_and_table7_reads_it(tmp_path):
    from oodbench.backbones import create_backbone
    from oodbench.orchestration.pipeline import RunSettings, run

    rng = np.random.default_rng(3)
    root = tmp_path / "data"
    id_files = [(f"{c}/{c}_{i}.png", c) for c in ("cat", "dog", "fox") for i in range(3)]
    ood_files = [f"images/o{i}.png" for i in range(6)]
    colours = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}
    for rel, c in id_files:
        _png(root / "ID/test" / rel, colours[c], rng)
    for rel in ood_files:
        _png(root / "OOD/test" / rel, rng.integers(0, 255, 3), rng)
    # official-style lists: the ID list names classes with other words than the benchmark's class names (as the
    # WordNet lemmas of ImageNet-1K) and two folders share one name; the OOD list labels 5 of the 6 images
    id_list = _write_list(tmp_path / "id.tsv.gz", [("cat/", "kitty"), ("dog/", "hound"), ("fox/", "hound")])
    ood_names = ["marsh", "desert", "marsh", "forest", "desert"]
    ood_list = _write_list(tmp_path / "ood.tsv.gz", list(zip(ood_files[:5], ood_names)))
    spec = BenchmarkSpec(name="classify-test", description="tiny", id_test=SplitSpec("ID test", "ID/test", group="id"),
                         id_val=None, ood=(SplitSpec("scenes", "OOD/test"),), class_names=("cat", "dog", "fox"),
                         classify_labels={"ID test": id_list, "scenes": ood_list})
    resolved = spec.resolve(root)
    (result,) = run(resolved, RunSettings(backbone="test_clip_tiny", postprocessors=("mcm",), quiet=True))
    entry = result.record.extra["classify"]
    assert entry["expected"] == ["ID test", "scenes"]

    # by hand: the model's own image and text embeddings
    b = create_backbone("test_clip_tiny")
    b.model.eval()
    prep = b.preprocess()

    def embed(paths):
        x = torch.stack([prep(Image.open(p).convert("RGB")) for p in paths])
        with torch.no_grad():
            return torch.nn.functional.normalize(b.model.encode_image(x), dim=-1).numpy()

    def text(names):
        with torch.no_grad():
            t = b.model.encode_text(b.tokenizer([f"a photo of a {n}" for n in names]))
        return torch.nn.functional.normalize(t, dim=-1).numpy()

    id_names = ["hound", "kitty"]
    id_truth = ["kitty"] * 3 + ["hound"] * 6
    pred = np.argmax(embed([root / "ID/test" / r for r, _ in id_files]) @ text(id_names).T, axis=1)
    id_acc = np.mean([id_names[p] == t for p, t in zip(pred, id_truth)])
    ood_distinct = ["desert", "forest", "marsh"]
    pred = np.argmax(embed([root / "OOD/test" / r for r in ood_files[:5]]) @ text(ood_distinct).T, axis=1)
    ood_acc = np.mean([ood_distinct[p] == t for p, t in zip(pred, ood_names)])

    assert entry["sets"]["ID test"]["n"] == 9 and entry["sets"]["scenes"]["n"] == 5
    assert entry["sets"]["ID test"]["names"] == 2 and entry["sets"]["scenes"]["names"] == 3
    assert entry["sets"]["ID test"]["accuracy"] == pytest.approx(id_acc, abs=1e-12)
    assert entry["sets"]["scenes"]["accuracy"] == pytest.approx(ood_acc, abs=1e-12)
    assert classify_value(result.record.extra, "average") == pytest.approx((id_acc + ood_acc) / 2)
    # standard zero-shot accuracy with the benchmark's class names is another number, kept as id_accuracy
    assert result.record.id_accuracy is not None

    from oodbench.results.runs import metric_value

    assert metric_value(result.record, "classify:scenes", "Accuracy") == pytest.approx(ood_acc)


def test_classify_average_needs_every_declared_split():
    extra = {"classify": {"expected": ["a", "b"], "sets": {"a": {"accuracy": 0.5}}}}
    assert classify_value(extra, "a") == 0.5 and classify_value(extra, "average") is None
    extra["classify"]["sets"]["b"] = {"accuracy": 0.7}
    assert classify_value(extra, "average") == pytest.approx(0.6)
    assert classify_value({}, "a") is None


def test_table7_cells_read_the_official_protocol_and_the_text_variant_keeps_zero_shot_accuracy():
    from oodbench.papers.setar import experiments as E

    cells = next(e for e in E.paper_experiments("neurips") if e.id == "accuracy").tables[0].cells
    assert {c.column: c.source for c in cells if c.row == ("SeTAR",)} == {
        "IN1K": "classify:ImageNet-1K test", "SUN": "classify:SUN", "Places": "classify:Places",
        "Texture": "classify:Texture", "Average": "classify:average"}
    assert not any(c.blocked for c in cells if c.row != ("LoCoOp",))
    text = next(e for e in E.paper_experiments("neurips", "text") if e.id == "accuracy").tables[0].cells
    assert {c.column: c.source for c in text if c.row == ("SeTAR",) and not c.blocked} == {"IN1K": "id_accuracy"}
