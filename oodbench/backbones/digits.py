"""``digits_clip``: the tiny open_clip CLIP trained on the embedded ``digits`` benchmark, shipped with oodbench.

The architecture is OpenAI CLIP's (QuickGELU, class-token pooling, causal text transformer pooled at the EOT
token) shrunk to 32-px images with 4-px patches (an 8x8 grid), and a text context of 16 tokens with open_clip's
BPE tokenizer. Its 49,408-row token embedding is frozen at a seeded random init and **regenerated from the
seed at load time** (:func:`token_embedding`), so the shipped file holds only the trained weights (fp16,
``oodbench/assets/digits_clip/``). ``oodbench digits train --out DIR`` reproduces them
(:mod:`oodbench.backbones.digits_training`); ``pretrained=DIR`` loads such a folder instead of the shipped one.

Files of a weights folder:

* ``digits_clip.json``: ``model_cfg`` (keyword arguments of ``open_clip.CLIP``), ``token_embedding``
  (seed, std, SHA-256 of the regenerated matrix) and ``preprocess_cfg`` (size, mean, std, interpolation).
* ``digits_clip.safetensors``: every parameter except ``token_embedding.weight``, in fp16.
* ``training.json``: how the weights were made (seed, epochs, time) and what they reach (accuracy, AUROCs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from oodbench.errors import DataError, UserError
from oodbench.registry import register

log = logging.getLogger("oodbench")

CONFIG_FILE = "digits_clip.json"
WEIGHTS_FILE = "digits_clip.safetensors"
METADATA_FILE = "training.json"
TOKEN_EMBEDDING_KEY = "token_embedding.weight"

OPENAI_MEAN = tuple(OPENAI_DATASET_MEAN)  # open_clip's OpenAI CLIP normalisation
OPENAI_STD = tuple(OPENAI_DATASET_STD)

MODEL_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 4, "width": 128, "layers": 4, "head_width": 32, "pool_type": "tok"},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
PREPROCESS_CFG: dict[str, Any] = {"size": 32, "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "interpolation": "bicubic"}
TOKEN_EMBEDDING_STD = 0.02  # open_clip's init of the token embedding


def shipped_weights_dir() -> Path:
    """The folder of the weights that ship with oodbench."""
    return Path(str(resources.files("oodbench") / "assets" / "digits_clip"))


def token_embedding(seed: int, vocab_size: int, width: int, std: float = TOKEN_EMBEDDING_STD) -> torch.Tensor:
    """The frozen token embedding ``[vocab_size, width]`` (float32), regenerated from ``seed``.

    Drawn with numpy's legacy ``RandomState`` (its stream is frozen by numpy's compatibility policy), so the
    matrix is bit-identical on every machine and numpy version.
    """
    values = np.random.RandomState(seed).standard_normal((vocab_size, width)) * std
    return torch.from_numpy(values.astype(np.float32))


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def build_model(model_cfg: dict[str, Any], embedding_seed: int, init_seed: int | None = None):
    """An ``open_clip.CLIP`` of ``model_cfg`` whose token embedding is regenerated from ``embedding_seed`` and frozen.

    Args:
        model_cfg: keyword arguments of ``open_clip.CLIP`` (see :data:`MODEL_CFG`).
        embedding_seed: seed of :func:`token_embedding`.
        init_seed: seed of the random init of every other weight (training); None leaves torch's RNG alone.
    """
    import open_clip

    if init_seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = open_clip.CLIP(**model_cfg)
    else:
        model = open_clip.CLIP(**model_cfg)
    emb = model.token_embedding
    with torch.no_grad():
        emb.weight.copy_(token_embedding(embedding_seed, emb.num_embeddings, emb.embedding_dim))
    emb.weight.requires_grad_(False)
    return model


def tokenizer(context_length: int):
    """open_clip's BPE tokenizer with the model's context length: ``tok(list[str]) -> LongTensor [N, context_length]``."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def save_weights(
    model, model_cfg: dict[str, Any], out_dir: str | Path, embedding_seed: int, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``digits_clip.json`` and the fp16 ``digits_clip.safetensors`` (and ``training.json``) into ``out_dir``.

    ``model_cfg`` is what ``model`` was built from (:func:`build_model`); ``embedding_seed`` its token-embedding seed.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k != TOKEN_EMBEDDING_KEY}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})  # one key: the header is deterministic
    emb = model.token_embedding.weight
    config = {
        "model_cfg": model_cfg,
        "token_embedding": {
            "seed": embedding_seed,
            "std": TOKEN_EMBEDDING_STD,
            "generator": "numpy.random.RandomState(seed).standard_normal((vocab_size, width)) * std, as float32",
            "sha256": tensor_sha256(emb),
        },
        "preprocess_cfg": PREPROCESS_CFG,
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    if metadata is not None:
        (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return out


def read_config(weights_dir: str | Path | None = None) -> dict[str, Any]:
    """``digits_clip.json`` of a weights folder (the shipped one when None)."""
    path = Path(weights_dir) if weights_dir is not None else shipped_weights_dir()
    file = path / CONFIG_FILE
    if not file.is_file():
        raise DataError(f"digits_clip: no {CONFIG_FILE} in {path}; create one with `oodbench digits train --out DIR`")
    return json.loads(file.read_text())


def read_metadata(weights_dir: str | Path | None = None) -> dict[str, Any]:
    """``training.json`` of a weights folder (the shipped one when None); empty when absent."""
    path = (Path(weights_dir) if weights_dir is not None else shipped_weights_dir()) / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def load_model(weights_dir: str | Path | None = None):
    """Rebuild the trained ``open_clip.CLIP`` (fp32, eval mode) from a weights folder (the shipped one when None).

    The token embedding is regenerated from the seed and checked against the recorded SHA-256; every other
    key is loaded strictly from the fp16 file and cast to fp32.
    """
    from safetensors.torch import load_file

    path = Path(weights_dir) if weights_dir is not None else shipped_weights_dir()
    cfg = read_config(path)
    te = cfg["token_embedding"]
    model = build_model(cfg["model_cfg"], te["seed"])
    if tensor_sha256(model.token_embedding.weight) != te["sha256"]:
        raise DataError(f"digits_clip: the token embedding regenerated from seed {te['seed']} does not match "
                        f"the one the weights in {path} were trained with")
    state = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
    state[TOKEN_EMBEDDING_KEY] = model.token_embedding.weight.detach().clone()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise DataError(f"digits_clip: the weights in {path} do not fit the architecture in {CONFIG_FILE}: "
                        f"{' '.join(first[:2])[:300]}") from exc
    model.token_embedding.weight.requires_grad_(False)
    return model.eval()


@register("backbones", "digits_clip")
def digits_clip(pretrained: str | None = None, *, seed: int = 0, interpolation: str | None = None, **options: Any):
    """Tiny OpenAI-style CLIP (32 px, 4-px patches) trained on the embedded digits benchmark; weights ship with oodbench.

    Args:
        pretrained: None = the shipped weights; a folder written by ``oodbench digits train --out DIR`` (or the
            ``digits_clip.safetensors`` / ``digits_clip.json`` file in it, which stands for its folder);
            ``"none"`` / ``"random"`` = the untrained architecture, seeded with ``seed`` (token embedding included).
        seed: only for the random init.
        interpolation: override the recorded resize interpolation (a no-op for the benchmark's 32-px images).
    """
    from oodbench.backbones.checkpoints import is_random_init
    from oodbench.backbones.clip import ClipBackbone

    if options:
        raise UserError(f"unknown digits_clip option(s) {', '.join(sorted(options))}; known: seed, interpolation")
    if is_random_init(pretrained):
        cfg = {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}
        model = build_model(MODEL_CFG, embedding_seed=seed, init_seed=seed).eval()
        tag = f"random(seed={seed})"
    else:
        if pretrained is not None and Path(pretrained).expanduser().name in (WEIGHTS_FILE, CONFIG_FILE) \
                and Path(pretrained).expanduser().is_file():
            pretrained = str(Path(pretrained).expanduser().parent)  # a file of a weights folder: the folder
        cfg = read_config(pretrained)
        model = load_model(pretrained)
        tag = "shipped" if pretrained is None else str(pretrained)
    pre = cfg["preprocess_cfg"]
    return ClipBackbone(
        model,
        "digits_clip",
        tag,
        tokenizer=tokenizer(cfg["model_cfg"]["text_cfg"]["context_length"]),
        image_size=pre["size"],
        mean=tuple(pre["mean"]),
        std=tuple(pre["std"]),
        interpolation=interpolation or pre["interpolation"],
        family="digits",
    )
