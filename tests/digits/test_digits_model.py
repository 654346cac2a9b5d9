"""digits_clip: the shipped weights load strictly, reach the recorded accuracy and AUROC, and the frozen token
embedding is regenerated bit-identically from its seed."""

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score

from oodbench.backbones import digits as dm
from oodbench.datasets import digits as dg

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def _plain_cosines(model, images: np.ndarray) -> np.ndarray:
    """cos(image, prompt) [N, 6] computed the straightforward way: numpy normalisation, the plain open_clip
    forward, and open_clip's tokenizer at the model's context length."""
    from open_clip.tokenizer import SimpleTokenizer

    x = (images.astype(np.float64) / 255.0 - MEAN) / STD
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))
    ids = SimpleTokenizer(context_length=16)([f"a photo of the digit {c}." for c in dg.CLASS_NAMES])
    with torch.no_grad():
        img = model.encode_image(x).double().numpy()
        txt = model.encode_text(ids).double().numpy()
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    return img @ txt.T


def _mcm(cos: np.ndarray) -> np.ndarray:
    e = np.exp(cos - cos.max(axis=1, keepdims=True))  # tau = 1
    return (e / e.sum(axis=1, keepdims=True)).max(axis=1)


def test_token_embedding_is_regenerated_bit_identically():
    a = dm.token_embedding(0, 49408, 128)
    b = dm.token_embedding(0, 49408, 128)
    assert a.dtype == torch.float32 and a.shape == (49408, 128)
    assert torch.equal(a, b)
    ref = (np.random.RandomState(0).standard_normal((49408, 128)) * 0.02).astype(np.float32)
    assert np.array_equal(a.numpy(), ref)
    assert not torch.equal(a, dm.token_embedding(1, 49408, 128))
    cfg = dm.read_config()
    te = cfg["token_embedding"]
    width = cfg["model_cfg"]["text_cfg"]["width"]
    regenerated = dm.token_embedding(te["seed"], 49408, width, te["std"])
    assert hashlib.sha256(regenerated.numpy().tobytes()).hexdigest() == te["sha256"]


def test_shipped_files_are_small_fp16_and_load_strictly():
    folder = dm.shipped_weights_dir()
    weights = folder / dm.WEIGHTS_FILE
    assert weights.stat().st_size < 5 * 2**20
    state = load_file(str(weights))
    assert dm.TOKEN_EMBEDDING_KEY not in state
    assert all(v.dtype == torch.float16 for v in state.values())
    model = dm.load_model()
    full = model.state_dict()
    assert set(full) == set(state) | {dm.TOKEN_EMBEDDING_KEY}
    for k, v in state.items():
        assert torch.equal(full[k], v.float()), k
    assert not model.token_embedding.weight.requires_grad
    # architecture: QuickGELU, class-token pooling, 4-px patches on 32-px images, context 16
    from open_clip.transformer import QuickGELU

    assert model.visual.pool_type == "tok" and not model.visual.attn_pool
    assert any(isinstance(m, QuickGELU) for m in model.modules())
    assert tuple(model.visual.grid_size) == (8, 8) and model.context_length == 16


def test_truncated_weights_are_rejected(tmp_path):
    import shutil

    from safetensors.torch import save_file

    from oodbench.backbones import create_backbone

    folder = tmp_path / "w"
    shutil.copytree(dm.shipped_weights_dir(), folder)
    state = load_file(str(folder / dm.WEIGHTS_FILE))
    state.pop(next(iter(state)))
    save_file(state, str(folder / dm.WEIGHTS_FILE))
    from oodbench.errors import DataError

    with pytest.raises(DataError, match="do not fit the architecture.*Missing key"):
        create_backbone("digits_clip", pretrained=str(folder))


def test_backbone_preprocessing_matches_training(digits_backbone, digits_data):
    from oodbench.backbones.digits_training import to_tensor

    images = digits_data.arrays["textures"][0][:8]
    pre = digits_backbone.preprocess()
    via_backbone = torch.stack([pre(dg.build_digits().source("textures").load(i)) for i in range(8)])
    ref = torch.from_numpy(((images / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32))
    assert torch.allclose(via_backbone, ref, atol=1e-6)
    assert torch.allclose(to_tensor(images), ref, atol=1e-6)
    assert digits_backbone.preprocess_config()["resize"] == 32


def test_shipped_model_reaches_the_recorded_accuracy_and_auroc(digits_backbone, digits_data):
    meta = dm.read_metadata()
    images, labels = digits_data.arrays[dg.ID_TEST]
    cos = _plain_cosines(digits_backbone.model, images)
    acc = float((cos.argmax(1) == labels).mean())
    assert acc >= 0.95
    assert acc == pytest.approx(meta["accuracy_id_test"], abs=1 / 300)

    # the backbone's own path (PIL -> preprocess -> compute_features, text through the trimmed encoder) agrees
    src = dg.build_digits().source(dg.ID_TEST)
    pre = digits_backbone.preprocess()
    x = torch.stack([pre(src.load(i)) for i in range(len(src))])
    feats = digits_backbone.compute_features(x, {"image"})["image"].double().numpy()
    text = digits_backbone.shared_features({"text"}, list(dg.CLASS_NAMES), dg.PROMPT)["text"].astype(np.float64)
    cos_bb = (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    assert np.allclose(cos_bb, cos, atol=1e-4)

    near = _plain_cosines(digits_backbone.model, digits_data.arrays[dg.NEAR][0])
    id_s, near_s = _mcm(cos), _mcm(near)
    auroc = roc_auc_score(np.r_[np.ones(len(id_s)), np.zeros(len(near_s))], np.r_[id_s, near_s])
    assert auroc >= 0.90
    assert auroc == pytest.approx(meta["mcm_auroc"][dg.NEAR], abs=2e-3)
    for key in dg.FAR:
        far_s = _mcm(_plain_cosines(digits_backbone.model, digits_data.arrays[key][0]))
        far_auc = roc_auc_score(np.r_[np.ones(len(id_s)), np.zeros(len(far_s))], np.r_[id_s, far_s])
        assert far_auc == pytest.approx(meta["mcm_auroc"][key], abs=2e-3), key


def _explain_fingerprints(recorded: dict[str, str], built: dict[str, str], roles: dict[str, str]) -> str:
    """Which splits differ from those recorded in training.json, and what may have changed."""
    import numpy
    import skimage
    import sklearn

    differ = sorted(set(recorded) | set(built), key=lambda k: (roles.get(k, "~"), k))
    lines = [f"  {name} ({roles.get(name, 'not in the benchmark')}): recorded {recorded.get(name)}, built "
             f"{built.get(name)}" for name in differ if recorded.get(name) != built.get(name)]
    trained_on = [name for name in differ if recorded.get(name) != built.get(name) and roles.get(name) == "id_fit"]
    return "\n".join([
        "the digits splits built here differ from those the shipped digits_clip was measured on:", *lines,
        "Every pixel is exact integer arithmetic (integer grey, integer area sums, integer stretch and quantisation, "
        "integer bilinear weights, one round-half-to-even division each; datasets/digits.py), so no CPU, BLAS or "
        "SIMD path can change it (test_digits_exact checks that). Check what goes in: the source data and their "
        f"packages (numpy {numpy.__version__}: the seeded Generator draws; scikit-learn {sklearn.__version__}: "
        f"load_digits; scikit-image {skimage.__version__}: the photos, textures and lfw_subset), and "
        "datasets/digits.py itself.",
        ("The training split differs: the shipped weights no longer match their data; retrain with "
         "`oodbench digits train --out DIR` and replace oodbench/assets/digits_clip/." if trained_on else
         "Training data unchanged: if the change is intended, re-measure the shipped weights on the new splits and "
         "record their fingerprints and the construction version in training.json (data_construction)."),
    ])


def test_training_metadata_matches_the_current_data():
    """The splits the shipped weights were trained and measured on are the ones built today, through the registry
    as `oodbench digits train` reads them."""
    from oodbench.benchmark import get_benchmark

    meta = dm.read_metadata()
    resolved = get_benchmark("digits").resolve()
    built = {s.name: s.source.fingerprint() for s in resolved.splits()}
    roles = {s.name: str(s.role) for s in resolved.splits()}
    assert meta["splits"] == built, _explain_fingerprints(meta["splits"], built, roles)
    assert meta["benchmark"] == "digits"
    assert meta["data_construction"]["version"] == dg.CONSTRUCTION
    assert meta["data_construction"]["trained_on_version"] <= dg.CONSTRUCTION
    assert meta["config"]["seed"] == dm.read_config()["token_embedding"]["seed"]
    assert "oodbench digits train" in meta["command"]
    weights = (dm.shipped_weights_dir() / dm.WEIGHTS_FILE).read_bytes()
    assert hashlib.sha256(weights).hexdigest() == meta["weights_sha256"]
    json.dumps(meta)


def test_fingerprint_failure_names_the_split_and_the_cause():
    recorded = {"digits 0-5 (train)": "a", "photos-val": "b", "noise": "c"}
    built = {"digits 0-5 (train)": "a", "photos-val": "x", "noise": "c"}
    roles = {"digits 0-5 (train)": "id_fit", "photos-val": "ood_val", "noise": "ood"}
    text = _explain_fingerprints(recorded, built, roles)
    assert "photos-val (ood_val): recorded b, built x" in text and "noise (" not in text
    assert "integer" in text and "re-measure" in text and "retrain" not in text
    text = _explain_fingerprints(recorded, {**built, "digits 0-5 (train)": "z"}, roles)
    assert "digits 0-5 (train) (id_fit): recorded a, built z" in text and "retrain" in text


def test_random_init_option_builds_the_architecture():
    from oodbench.backbones import create_backbone

    a = create_backbone("digits_clip", pretrained="random", seed=3)
    b = create_backbone("digits_clip", pretrained="random", seed=3)
    assert a.weights_hash() == b.weights_hash() != create_backbone("digits_clip").weights_hash()
    with pytest.raises(Exception, match="unknown digits_clip option"):
        create_backbone("digits_clip", bogus=1)
