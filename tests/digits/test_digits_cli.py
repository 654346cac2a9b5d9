"""``oodbench digits info`` and ``oodbench digits train``: the reproduce command writes a folder the backbone loads."""

import hashlib
import json

import numpy as np
import torch

from oodbench.backbones import create_backbone
from oodbench.backbones import digits as dm
from oodbench.cli import main


def test_info_shows_splits_and_shipped_numbers(capsys):
    assert main(["digits", "info"]) == 0
    text = capsys.readouterr().out
    meta = dm.read_metadata()
    for needle in ("digits 6-9", "textures", "photos-val", "noise-val", "ID test accuracy",
                   f"{100 * meta['accuracy_id_test']:.2f}", "oodbench digits train"):
        assert needle in text, needle


def test_train_one_epoch_is_deterministic_and_loadable(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["digits", "train", "--out", str(a), "--epochs", "1", "--seed", "5", "-q"]) == 0
    assert main(["digits", "train", "--out", str(b), "--epochs", "1", "--seed", "5", "-q"]) == 0
    digest = lambda p: hashlib.sha256((p / dm.WEIGHTS_FILE).read_bytes()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)  # same seed, same machine: the same weights
    meta = json.loads((a / dm.METADATA_FILE).read_text())
    assert meta["config"]["epochs"] == 1 and meta["config"]["seed"] == 5 and len(meta["history"]) == 1
    assert set(meta["mcm_auroc"]) == {"digits 6-9", "textures", "faces", "photos", "noise"}
    assert dm.read_config(a)["token_embedding"]["seed"] == 5
    assert meta["benchmark"] == "digits" and meta["splits"] == dm.read_metadata()["splits"]  # same data as shipped

    bb = create_backbone("digits_clip", pretrained=str(a))
    assert bb.pretrained == str(a) and bb.weights_hash() != create_backbone("digits_clip").weights_hash()
    x = torch.zeros(2, 3, 32, 32)
    assert np.isfinite(bb.compute_features(x, {"image", "local"})["local"].numpy()).all()


def test_train_rejects_bad_epochs(tmp_path, capsys):
    assert main(["digits", "train", "--out", str(tmp_path / "x"), "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_training_reads_the_benchmark_through_the_registry(digits_data):
    """`digits train` takes its data from the registered benchmark: ID fit = training set, ID val held out."""
    from oodbench.cli.digits_cmd import training_data
    from oodbench.datasets import digits as dg

    data = training_data()
    for got, key in ((data.train, dg.ID_TRAIN), (data.val, dg.ID_VAL), (data.test, dg.ID_TEST)):
        assert np.array_equal(got[0], digits_data.arrays[key][0]) and np.array_equal(got[1], digits_data.arrays[key][1])
    assert set(data.ood) == {dg.NEAR, *dg.FAR} and data.groups[dg.NEAR] == "near"
    assert {data.groups[k] for k in dg.FAR} == {"far"}
    assert data.class_names == dg.CLASS_NAMES and data.prompt == dg.PROMPT
    assert data.fingerprints["digits 0-5 (train)"] == digits_data.source(dg.ID_TRAIN).fingerprint()
