"""The training loop of the fine-tuning methods: LoCoOp loss on the ID val split, SGD, cosine schedule.

Original code: X1AOX1A/SeTAR ``finetune.py`` (spec §10.2-10.3): the 1-shot ID val split, shuffled; the LoCoOp
loss (``methods/setar/loss.py``, the module the search uses) with ground-truth top-K patch masks on the ×100
logits; SGD (lr 0.01, momentum 0.9, weight decay 5e-4 on the trainable factors), Hugging Face's ``cosine``
schedule without warm-up stepped after every batch, 5 epochs, fp32, every batch kept (``get_id_loader`` does not
drop the last one). LoCoOp (AtsuMiyai/LoCoOp on Dassl.pytorch): ``vit_b16_ep50`` holds one warm-up epoch at a constant
lr of 1e-5, then Dassl's ``CosineAnnealingLR(T_max = max_epoch)`` starts at the full lr and is stepped once per epoch
(``ConstantWarmupScheduler``: epoch e >= W runs at ``0.5 lr (1 + cos(pi (e - W) / E))``); its train loader drops the
last incomplete batch when the set holds at least one batch (``drop_last = len(data) >= batch_size``); it trains in
fp16 (``TRAINER.LOCOOP.PREC``: the CLIP weights and the context vectors are half tensors, SGD updates them in
half, no loss scaling).

Randomness (shuffling, augmentation) is seeded: two runs with the same seed on the same device give the same
losses, for any CPU thread count: on the CPU the loss and the backward pass run with one thread (the weight
gradients are matmuls whose inner dimension is the batch times the tokens, which MKL divides over threads in a
thread-dependent order, and the loss's means over patches are full reductions; :mod:`oodbench.threads`). Progress: a rich bar with the running loss and ETA on a terminal, one log line per epoch otherwise,
nothing when quiet.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from oodbench.errors import DataError, UserError

from .augment import CLIP_AUGMENT, Augment
from .presets import PRECISIONS

log = logging.getLogger("oodbench")

SCHEDULES = ("cosine", "cosine-epoch")
LOG_COLUMNS = ("step", "epoch", "lr", "locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent", "batch",
               "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (part of the checkpoint key).

    Attributes:
        epochs, lr, batch_size: length, base learning rate, images per step.
        lam, top_k: LoCoOp loss weight and patch top-K.
        momentum, weight_decay: SGD settings.
        schedule: ``"cosine"`` (per batch, no warm-up; SeTAR+FT and LoRA) or ``"cosine-epoch"`` (per epoch after
            ``warmup_epochs`` at ``warmup_lr``; LoCoOp).
        drop_last: leave out the last incomplete batch of every epoch when the set holds at least ``batch_size``
            images (Dassl's rule; LoCoOp); False: every image is used (SeTAR+FT, LoRA).
        precision: ``"fp32"``; ``"bf16"`` (autocast of the forward pass); ``"fp16"`` (fp16 autocast of the forward
            pass and the trainable tensors kept and updated in fp16, as the official LoCoOp's half-precision
            training; no loss scaling). The loss is computed in fp32 in every case.
        seed: shuffling and augmentation.
        augment: the training transform (:class:`~.augment.Augment`).
    """

    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 100
    lam: float = 0.1
    top_k: int = 300
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    drop_last: bool = False
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    precision: str = "fp32"
    seed: int = 0
    augment: Augment = field(default_factory=lambda: CLIP_AUGMENT)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"the training batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise UserError(f"the learning rate must be > 0, got {self.lr}")
        if self.top_k < 0 or self.lam < 0:
            raise UserError(f"LoCoOp lambda and top-K must be >= 0, got {self.lam} and {self.top_k}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule '{self.schedule}'; choose {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"training precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        return d


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of ``cfg.lr`` for optimizer step ``step`` (0-based).

    ``cosine``: ``0.5 (1 + cos(pi step / total))`` (Hugging Face ``get_cosine_schedule_with_warmup``, 0 warm-up).
    ``cosine-epoch``: epoch ``e < W`` (``warmup_epochs``): ``warmup_lr / lr``; else
    ``0.5 (1 + cos(pi (e - W) / epochs))`` — Dassl's ``ConstantWarmupScheduler`` in front of
    ``CosineAnnealingLR(T_max = epochs)``: the cosine is not stepped during the warm-up, so it starts at the full lr
    in epoch W, and its period stays ``epochs`` (it never reaches 0).
    """
    if cfg.schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    epoch = step // steps_per_epoch
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr / cfg.lr
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / cfg.epochs))


def drops_last(cfg: TrainConfig, n: int) -> bool:
    """Whether the loader leaves out the last incomplete batch: ``cfg.drop_last`` and ``n >= batch_size`` (Dassl)."""
    return bool(cfg.drop_last) and n >= cfg.batch_size


@dataclass
class TrainLog:
    """Per-step losses (the Figure 6 curves) and per-epoch times."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(sum(e["seconds"] for e in self.epochs))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in self.steps:
            w.writerow({k: row[k] for k in LOG_COLUMNS})
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"columns": list(LOG_COLUMNS), "steps": self.steps, "epochs": self.epochs, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainLog":
        return cls(list(d.get("steps", [])), list(d.get("epochs", [])), list(d.get("skipped", [])))


Forward = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor | None]"]


def train(forward: Forward, params: Iterable[torch.nn.Parameter], source, transform: Callable, cfg: TrainConfig,
          device: str | torch.device = "cpu", *, quiet: bool = False, on_bad: str = "skip", title: str = "fine-tuning",
          on_epoch_end: Callable[[int, int], None] | None = None, modules: Iterable[torch.nn.Module] = ()) -> TrainLog:
    """Train ``params`` to minimise the LoCoOp loss of ``forward`` on ``source``.

    Args:
        forward: augmented images ``[B, 3, H, W]`` (on ``device``) -> ``(logits [B, C], local logits [B, P, C] | None)``,
            both with the logit scale applied.
        params: the trainable parameters (everything else must be frozen by the caller).
        source: an :class:`~oodbench.data.sources.ImageSource` with labels (the ID val split).
        transform: PIL image -> tensor (:func:`~.augment.train_transform`).
        cfg: the settings.
        device: where the batches go.
        quiet: no progress output.
        on_bad: unreadable images: ``"skip"`` (left out, reported) or ``"fail"``.
        title: progress-bar label.
        on_epoch_end: ``fn(epoch, step)`` after each epoch (checkpointing).
        modules: modules switched to train mode during training (and back to eval after).

    Returns:
        The :class:`TrainLog`.
    """
    from oodbench.data.loader import SourceDataset, collate
    from oodbench.methods.setar.loss import batch_terms
    from oodbench.threads import one_thread

    params = [p for p in params]
    if not params:
        raise UserError("nothing to train: the method attached no trainable parameter")
    labels_all = torch.as_tensor(np.array(source.labels), dtype=torch.int64)
    n = len(source)
    if n == 0:
        raise DataError(f"{source.name}: no images to train on")
    drop = drops_last(cfg, n)
    steps_per_epoch = n // cfg.batch_size if drop else math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    device = torch.device(device)
    dtypes = [p.dtype for p in params]
    if cfg.precision == "fp16":  # trainable tensors kept and updated in half precision (official LoCoOp)
        for p in params:
            p.data = p.data.half()
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, steps_per_epoch))
    log_ = TrainLog()
    modules = list(modules)
    for m in modules:
        m.train()
    progress = _Progress(title, total, quiet)
    step = 0
    with torch.random.fork_rng(devices=[]), progress:
        torch.manual_seed(cfg.seed)  # augmentation draws from the global generator
        gen = torch.Generator().manual_seed(cfg.seed)
        loader = torch.utils.data.DataLoader(SourceDataset(source, transform), batch_size=cfg.batch_size,
                                             shuffle=True, generator=gen, num_workers=0, collate_fn=collate,
                                             drop_last=drop)
        try:
            for epoch in range(cfg.epochs):
                t0 = time.perf_counter()
                losses = []
                for images, idx, bad in loader:
                    _report_bad(source, bad, on_bad, log_)
                    if images is None:
                        continue
                    ts = time.perf_counter()
                    y = labels_all[idx].to(device)
                    lr = opt.param_groups[0]["lr"]
                    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
                    with torch.autocast(device.type, dtype=half or torch.bfloat16, enabled=half is not None):
                        g, loc = forward(images.to(device))
                    # one CPU thread for the loss (its means over patches reduce to one number) and the backward
                    # pass (the weight gradients' inner sums run over batch x tokens): both thread-dependent otherwise
                    with one_thread(device):
                        terms = batch_terms(g.float(), loc.float() if loc is not None else None, y, cfg.lam,
                                            cfg.top_k)
                        loss = terms["locoop_loss"]
                        if not torch.isfinite(loss):
                            raise UserError(f"the training loss became {float(loss)} at step {step}; lower the "
                                            "learning rate or train in fp32")
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                    opt.step()
                    sched.step()
                    values = {k: float(v.detach()) for k, v in terms.items()}
                    row = {"step": step, "epoch": epoch, "lr": lr, **values, "batch": int(y.shape[0]),
                           "seconds": time.perf_counter() - ts}
                    log_.steps.append(row)
                    losses.append(values["locoop_loss"])
                    step += 1
                    progress.advance(epoch, cfg.epochs, values["locoop_loss"])
                seconds = time.perf_counter() - t0
                mean = sum(losses) / len(losses) if losses else float("nan")
                log_.epochs.append({"epoch": epoch, "seconds": seconds, "mean_loss": mean, "steps": len(losses)})
                progress.epoch_done(epoch, cfg.epochs, mean, seconds, step, total)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, step)
        finally:
            for m in modules:
                m.eval()
            for p, dtype in zip(params, dtypes):  # back to the callers' dtype (fp16 -> fp32 is exact)
                p.data = p.data.to(dtype)
    return log_


def _report_bad(source, bad, on_bad: str, log_: TrainLog) -> None:
    if not bad:
        return
    if on_bad == "fail":
        idx, reason = bad[0]
        raise DataError(f"{source.name}: cannot read {source.describe(idx)} ({reason}); pass --on-bad skip to leave "
                        "unreadable images out")
    for idx, reason in bad:
        desc = source.describe(idx)
        if desc not in log_.skipped:
            log_.skipped.append(desc)
            log.warning("%s: unreadable image left out of training: %s (%s)", source.name, desc, reason)


class _Progress:
    """One task of :func:`oodbench.console.progress` (bar with ETA on a terminal, log lines otherwise, nothing when
    quiet), with the epoch and the running loss as its info text."""

    def __init__(self, title: str, total: int, quiet: bool):
        from oodbench.console import progress

        self.title = title
        self._prog = progress(quiet=quiet)
        self._task: int | None = None
        self._total = total

    def __enter__(self) -> "_Progress":
        self._prog.__enter__()
        self._task = self._prog.add_task(self.title, total=self._total)
        return self

    def __exit__(self, *exc) -> None:
        self._prog.__exit__(*exc)

    def advance(self, epoch: int, epochs: int, loss: float) -> None:
        self._prog.update(self._task, advance=1, info=f"epoch {epoch + 1}/{epochs}, loss {loss:.4f}")

    def epoch_done(self, epoch: int, epochs: int, mean: float, seconds: float, step: int, total: int) -> None:
        log.debug("%s: epoch %d/%d, mean loss %.4f, %.1f s", self.title, epoch + 1, epochs, mean, seconds)
