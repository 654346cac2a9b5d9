"""Training of the ``digits_clip`` backbone, and its MCM evaluation.

The recipe (CLIP's contrastive objective reduced to a fixed label set): every training image is classified
against the text embeddings of the ID class prompts (``"a photo of the digit zero."``, ...) with cross-entropy
on ``logit_scale.exp() * cos(image, text)``; the logit scale is learned (capped at 100 as in CLIP); AdamW with a
linear warm-up and a cosine decay; light random affine augmentation (rotation, scale, translation) of the 32-px
images. Both towers are trained except the token embedding, which stays at its seeded random init (see
:mod:`oodbench.backbones.digits`).

The learning rate matters: at 1e-3 the class-token model sat near chance for ~20 epochs and 60 epochs
ended at a near-OOD MCM AUROC of 0.86; at 3e-4 it leaves chance after ~5 epochs and converges in ~30.

This module knows no benchmark: the caller passes the images in (:class:`TrainingData`). ``oodbench digits train
--out DIR`` takes them from the registered ``digits`` benchmark -- its ID fit split is the training set, its ID
val split is held out for the SeTAR search, and the test splits are used once, after training, to write the
numbers into ``training.json``. The shipped weights were made with the defaults of :class:`TrainConfig`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodbench.atomic import write_text
from oodbench.backbones import digits as digits_model

log = logging.getLogger("oodbench")

Split = tuple[np.ndarray, np.ndarray]  # (uint8 images [N, 32, 32, 3], int64 labels [N])


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`train_digits_clip` (the defaults made the shipped weights)."""

    seed: int = 0  # init, batch order and augmentation; also the token-embedding seed
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-4
    min_lr: float = 1e-5
    warmup_epochs: int = 3
    weight_decay: float = 0.1
    max_rotation: float = 10.0  # degrees
    scale_range: float = 0.1  # scale in [1 - r, 1 + r]
    max_shift: float = 2.0  # pixels
    threads: int = 2
    eval_every: int = 10  # epochs between val-accuracy log lines (0: never)


@dataclass(frozen=True)
class TrainingData:
    """The images training and its evaluation read, with the class prompts.

    Attributes:
        class_names: the ID class names, in label order.
        prompt: the prompt template (``"a photo of the digit {}."``).
        train: ``(uint8 [N, 32, 32, 3], int64 [N])`` training images and labels (the ID fit split).
        val: held-out ID images and labels (the ID val split): val accuracy in the log and the metadata.
        test: ID test images and labels: accuracy and the ID side of every AUROC.
        ood: OOD test split name -> ``uint8 [M, 32, 32, 3]`` images.
        groups: OOD test split name -> ``"near"`` / ``"far"``; the far ones are averaged in the metadata.
        fingerprints: split name -> fingerprint of its images, recorded in ``training.json``.
        benchmark: name of the benchmark the splits come from.
    """

    class_names: tuple[str, ...]
    prompt: str
    train: Split
    val: Split
    test: Split
    ood: dict[str, np.ndarray]
    groups: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    benchmark: str = "digits"


# ----------------------------------------------------------------------------------------- tensors
def to_tensor(images: np.ndarray, mean=digits_model.OPENAI_MEAN, std=digits_model.OPENAI_STD) -> torch.Tensor:
    """``uint8 [N, 32, 32, 3]`` -> normalised ``float32 [N, 3, 32, 32]`` (ToTensor + Normalize, as the backbone does)."""
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(255.0)
    return normalize(x, mean, std)


def normalize(x: torch.Tensor, mean=digits_model.OPENAI_MEAN, std=digits_model.OPENAI_STD) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def random_affine(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random rotation / scale / shift of a batch ``[B, 3, H, W]`` in [0, 1]; the border is filled with black."""
    b, _, h, _ = x.shape
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(cfg.max_rotation)
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * cfg.scale_range
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * cfg.max_shift / h)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _param_groups(model, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, total: int, warmup: int, cfg: TrainConfig) -> float:
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------------------------------- evaluate
@torch.inference_mode()
def encode_images(model, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised image embeddings ``[N, D]`` of ``uint8 [N, 32, 32, 3]`` images."""
    feats = [model.encode_image(to_tensor(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(feats), dim=-1)


@torch.inference_mode()
def encode_prompts(model, tok, class_names: tuple[str, ...], prompt: str) -> torch.Tensor:
    """L2-normalised text embeddings ``[C, D]`` of the class prompts."""
    return F.normalize(model.encode_text(tok([prompt.format(c) for c in class_names])), dim=-1)


def _auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """AUROC with ID as the positive class (higher score = more ID)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    return float(roc_auc_score(y, np.r_[id_scores, ood_scores]))


def evaluate(model, data: TrainingData, tok, temperature: float = 1.0) -> dict[str, Any]:
    """Zero-shot accuracy on ID test (and val) and MCM AUROC of every OOD test set.

    MCM = max softmax of ``cos(image, text) / temperature`` over the ID classes (higher = more ID).
    """
    model.eval()
    text = encode_prompts(model, tok, data.class_names, data.prompt)

    def run(images: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        cos = encode_images(model, images) @ text.T
        return cos, torch.softmax(cos / temperature, dim=-1).max(dim=-1).values.double().numpy()

    out: dict[str, Any] = {}
    for key, (images, labels) in (("id_test", data.test), ("id_val", data.val)):
        cos, _ = run(images)
        out[f"accuracy_{key}"] = float((cos.argmax(-1).numpy() == np.asarray(labels)).mean())
    _, id_scores = run(data.test[0])
    out["mcm_auroc"] = {name: _auroc(id_scores, run(images)[1]) for name, images in data.ood.items()}
    far = [v for name, v in out["mcm_auroc"].items() if data.groups.get(name) == "far"]
    if far:
        out["mcm_auroc_far_mean"] = float(np.mean(far))
    return out


# ------------------------------------------------------------------------------------------- train
def train_digits_clip(out_dir: str | Path, data: TrainingData, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Train ``digits_clip`` from scratch, write the weights folder, return the metadata written to ``training.json``.

    The numbers in the metadata are measured on the saved fp16 weights reloaded exactly as the backbone loads them.
    """
    cfg = cfg or TrainConfig()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(Path(out_dir), data, cfg)
    finally:
        torch.set_num_threads(threads_before)


def _train(out_dir: Path, data: TrainingData, cfg: TrainConfig) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    model_cfg = digits_model.MODEL_CFG
    model = digits_model.build_model(model_cfg, embedding_seed=cfg.seed, init_seed=cfg.seed)
    tok = digits_model.tokenizer(model_cfg["text_cfg"]["context_length"])
    prompts = tok([data.prompt.format(c) for c in data.class_names])

    images, labels = data.train
    x_all = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(255.0)
    y_all = torch.from_numpy(np.array(labels, dtype=np.int64))
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(x_all) / cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)

    log.info("digits_clip: training on %d images, %d epochs x %d steps", len(x_all), cfg.epochs, steps_per_epoch)
    step, history = 0, []
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        losses, correct = [], 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x = normalize(random_affine(x_all[idx], cfg, gen))
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, warmup, cfg)
            img = F.normalize(model.encode_image(x), dim=-1)
            txt = F.normalize(model.encode_text(prompts), dim=-1)
            logits = model.logit_scale.exp() * img @ txt.T
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            correct += int((logits.argmax(-1) == y_all[idx]).sum())
            step += 1
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_acc": correct / len(x_all)}
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            model.eval()
            text = encode_prompts(model, tok, data.class_names, data.prompt)
            val_x, val_y = data.val
            predicted = (encode_images(model, val_x) @ text.T).argmax(-1).numpy()
            row["val_acc"] = float((predicted == np.asarray(val_y)).mean())
            log.info("digits_clip: epoch %d/%d loss %.4f train acc %.3f val acc %.3f (%.0f s)", epoch + 1, cfg.epochs,
                     row["loss"], row["train_acc"], row["val_acc"], time.perf_counter() - t0)
        history.append(row)
    train_seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0

    digits_model.save_weights(model, model_cfg, out_dir, embedding_seed=cfg.seed)
    shipped = digits_model.load_model(out_dir)  # the fp16 weights, as every user will load them
    results = evaluate(shipped, data, tok)
    metadata = {
        "model": "digits_clip",
        "command": f"oodbench digits train --out DIR --seed {cfg.seed} --epochs {cfg.epochs}",
        "config": asdict(cfg),
        "train_seconds": round(train_seconds, 1),  # wall clock of the training loop
        "train_cpu_seconds": round(cpu_seconds, 1),  # CPU time of this process over all its threads
        "threads": cfg.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "benchmark": data.benchmark,
        "splits": dict(data.fingerprints),
        "n_train": len(x_all),
        "weights_file_bytes": (out_dir / digits_model.WEIGHTS_FILE).stat().st_size,
        "weights_sha256": hashlib.sha256((out_dir / digits_model.WEIGHTS_FILE).read_bytes()).hexdigest(),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **results,
        "history": history,
    }
    write_text(out_dir / digits_model.METADATA_FILE, json.dumps(metadata, indent=2) + "\n")
    near = [v for k, v in results["mcm_auroc"].items() if data.groups.get(k) == "near"]
    log.info("digits_clip: ID test accuracy %.4f, MCM AUROC near %s, far mean %s; %.0f s", results["accuracy_id_test"],
             f"{near[0]:.4f}" if near else "-", f"{results.get('mcm_auroc_far_mean', float('nan')):.4f}", train_seconds)
    return metadata
