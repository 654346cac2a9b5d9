"""The shared machinery of the registered fine-tuning methods (``setar-ft``, ``lora``, ``locoop``).

A fine-tuning method trains on the benchmark's ID val split (the split the SeTAR search reads) and caches what it
trained under ``<cache-dir>/checkpoints/<key>/``, ``key`` = :func:`oodbench.hashing.hash_json` of every
ingredient (backbone weights hash, preprocessing, val fingerprint, class names and prompt, training settings
with the seed, the method's own settings such as the SeTAR plan hash). The folder is filled under a temporary
name and renamed when complete; it holds:

* ``finetune.json`` — the record stored with every result (settings, trainable parameters, losses, times);
* ``loss_log.csv`` / ``loss_log.json`` — the LoCoOp loss terms of every step (the paper's Figure 6);
* ``checkpoint.safetensors`` — the trained tensors after the last finished epoch (written atomically each epoch);
* the method's result: ``weights.safetensors`` + ``adapters.safetensors`` (weight methods) or
  ``prompts.safetensors`` (LoCoOp).

The :class:`~oodbench.method.Modification` it returns is keyed by that hash and applies the trained weights
(or prompts) in place; its undo restores the backbone bit for bit.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from oodbench import atomic
from oodbench.errors import UserError
from oodbench.hashing import hash_json
from oodbench.method import Method, MethodContext, Modification
from oodbench.options import at_least, positive

from .presets import PRECISIONS

if TYPE_CHECKING:  # pragma: no cover  (torch is imported when training, not for --help)
    import torch

    from .trainer import TrainConfig, TrainLog

log = logging.getLogger("oodbench")

CACHE_VERSION = 2  # 2: SVD initialisation and the backward pass with one CPU thread (oodbench.threads)
RESULT_FILE = "finetune.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
#: What `oodbench finetune --out DIR` copies out of the cache folder.
EXPORTED = (RESULT_FILE, "loss_log.csv", "loss_log.json", "adapters.safetensors", "weights.safetensors",
            "prompts.safetensors", CHECKPOINT_FILE)
#: Options every fine-tuning method takes (constructor keywords), and their command-line flags.
TRAIN_OPTIONS = ("epochs", "lr", "batch_size", "lam", "top_k", "precision")
_TRAIN_FLAGS = {
    "epochs": ("--epochs", dict(type=at_least(1), metavar="N", help="training epochs (default: the method's preset)")),
    "lr": ("--lr", dict(type=positive(float), metavar="LR", help="learning rate (default: the method's preset)")),
    "batch_size": ("--train-batch-size", dict(type=at_least(1), metavar="N", help="images per training step (default: preset)")),
    "lam": ("--train-lambda", dict(type=at_least(0, float), metavar="X", help="lambda of the LoCoOp training loss (default: preset)")),
    "top_k": ("--train-topk", dict(type=at_least(0), metavar="K", help="top-K of the LoCoOp patch mask (default: preset)")),
    "precision": ("--train-precision", dict(choices=PRECISIONS,
                                            help="fp32 (SeTAR+FT / LoRA default, as their official code), bf16 "
                                                 "autocast, or fp16 (LoCoOp's default on CUDA, as its official "
                                                 "code; fp32 on CPU)")),
}


def add_flag(parser, flag: str, dest: str, **kwargs: Any) -> None:
    """Add ``flag`` unless another method already added it (methods shown side by side share flags)."""
    if flag in getattr(parser, "_option_string_actions", {}):
        return
    parser.add_argument(flag, dest=dest, default=None, **kwargs)


def _dest(option: str) -> str:
    return f"ft_{option}"


class FinetuneMethod(Method):
    """Base class: options, cache lookup, training into an atomic folder, the Modification."""

    reads_val = True
    run_flags = {"epochs": "--epochs", "lr": "--lr", "batch_size": "--train-batch-size", "lam": "--train-lambda",
                 "top_k": "--train-topk", "precision": "--train-precision", "rank": "--lora-rank",
                 "alpha": "--lora-alpha", "n_ctx": "--n-ctx"}
    trains = True
    produces = "checkpoint"
    option_names: ClassVar[tuple[str, ...]] = TRAIN_OPTIONS

    @classmethod
    def settings_text(cls, record: dict[str, Any]) -> str:
        """``rank 32, α 16, W_up; 5 epochs, lr 0.01, batch 32, λ 0.1, top-K 200, seed 3`` from a run's record: the
        method's own settings (:meth:`own_words`), then the training settings."""
        train = (record or {}).get("train") or {}
        words = [f"{train['epochs']} epoch{'s' if train['epochs'] != 1 else ''}" if "epochs" in train else "",
                 f"lr {train['lr']:g}" if isinstance(train.get("lr"), (int, float)) else "",
                 f"batch {train['batch_size']}" if "batch_size" in train else "",
                 f"λ {train['lam']:g}" if isinstance(train.get("lam"), (int, float)) else "",
                 f"top-K {train['top_k']}" if "top_k" in train else "",
                 f"{train['precision']}" if train.get("precision") not in (None, "fp32") else "",
                 f"seed {train['seed']}" if "seed" in train else ""]
        return "; ".join(p for p in (cls.own_words(record or {}), ", ".join(w for w in words if w)) if p)

    @classmethod
    def own_words(cls, record: dict[str, Any]) -> str:
        """The method's own settings in words (rank and α, prompt length, ...); subclasses."""
        return ""

    # ------------------------------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **kwargs: Any) -> None:
        for option in TRAIN_OPTIONS:
            flag, kw = _TRAIN_FLAGS[option]
            add_flag(parser, flag, _dest(option), **kw)
        cls.add_own_arguments(parser)

    @classmethod
    def add_own_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Flags of the method itself (subclasses)."""

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        opts = {o: getattr(args, _dest(o), None) for o in TRAIN_OPTIONS}
        return {k: v for k, v in opts.items() if v is not None}

    # ---------------------------------------------------------------------------------- subclasses
    def train_config(self, ctx: MethodContext) -> TrainConfig:
        """The settings of this run: the preset for the backbone, then the options."""
        raise NotImplementedError

    def own_ingredients(self, ctx: MethodContext) -> dict[str, Any]:
        """What besides the training settings determines the result (plan hash, rank, ...)."""
        return {}

    def train_into(self, ctx: MethodContext, cfg: TrainConfig, folder: Path) -> dict[str, Any]:
        """Train, write the result files into ``folder``; return the record's method-specific part."""
        raise NotImplementedError

    def apply_fn(self, folder: Path):
        """``apply_fn`` of the Modification from a finished checkpoint folder."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- contract
    def export(self, ctx: MethodContext, modification: Modification, dest: Path) -> list[str]:
        """Copy the cached logs and tensors into ``dest``; weight methods also write the merged model there."""
        import shutil

        folder = self.checkpoint_folder(ctx)
        dest.mkdir(parents=True, exist_ok=True)
        for name in EXPORTED:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, dest / name)
        lines = []
        name = ctx.backbone.name
        if (folder / "weights.safetensors").is_file():
            from .checkpoint import export_merged, load_tensors

            weights, _ = load_tensors(folder / "weights.safetensors")
            merged = export_merged(ctx.backbone, weights, dest, {"method": self.name, "key": modification.key})
            lines.append(f"merged model: {merged}  (oodbench run --backbone {name} --pretrained {merged})")
        if (dest / "prompts.safetensors").is_file():
            lines.append(f"learned prompts: {dest / 'prompts.safetensors'}  (oodbench run --backbone {name} "
                         f"--method {self.name} --prompts {dest / 'prompts.safetensors'})")
        return lines

    def check(self, ctx: MethodContext) -> None:
        super().check(ctx)
        cfg = self.train_config(ctx)  # raises UserError on bad settings
        if ctx.backbone.kind == "clip" and cfg.lam > 0 and cfg.top_k >= len(ctx.benchmark.spec.class_names):
            raise UserError(f"the training top-K {cfg.top_k} must be below the number of classes "
                            f"({len(ctx.benchmark.spec.class_names)}): with K >= C no patch is OOD and the LoCoOp "
                            "OOD term vanishes (pass --train-topk)")

    def seed(self, ctx: MethodContext, default: int) -> int:
        return int(ctx.seed) if ctx.seed is not None else int(default)

    def checkpoint_key(self, ctx: MethodContext, cfg: TrainConfig | None = None) -> str:
        cfg = cfg or self.train_config(ctx)
        bb, spec = ctx.backbone, ctx.benchmark.spec
        return hash_json({"method": self.name, "version": CACHE_VERSION, "weights": bb.weights_hash(),
                          "preprocess": bb.preprocess_config(), "val": ctx.benchmark.id_val.fingerprint(),
                          "classes": list(spec.class_names), "prompt": spec.prompt, "train": cfg.to_dict(),
                          **self.own_ingredients(ctx)})

    def checkpoint_folder(self, ctx: MethodContext) -> Path:
        return ctx.caches.checkpoints / self.checkpoint_key(ctx)

    def prepare(self, ctx: MethodContext) -> Modification:
        cfg = self.train_config(ctx)
        ctx.backbone.weights_hash()  # of the pristine weights, before anything is attached
        key = self.checkpoint_key(ctx, cfg)
        folder = ctx.caches.checkpoints / key
        if (folder / RESULT_FILE).is_file():
            log.info("%s: fine-tuned result %s reused from the cache (%s)", self.title(), key, folder)
        else:
            log.info("%s: training on %s (%d images), %d epochs, lr %g, batch %d, lambda %g, K %d, seed %d, %s",
                     self.title(), ctx.benchmark.id_val.name, len(ctx.benchmark.id_val), cfg.epochs, cfg.lr,
                     cfg.batch_size, cfg.lam, cfg.top_k, cfg.seed, cfg.precision)
            with atomic.folder(folder) as tmp:
                own = self.train_into(ctx, cfg, tmp)
                record = {"name": self.name, "hash": key, "display_name": self.title(), "train": cfg.to_dict(),
                          "device": str(ctx.backbone.device), "backbone": ctx.backbone.describe(),
                          "val_split": ctx.benchmark.id_val.name, **own}
                atomic.write_json(tmp / RESULT_FILE, record)
        record = json.loads((folder / RESULT_FILE).read_text())
        return Modification(method=self.name, key=key, record=record, apply_fn=self.apply_fn(folder))

    # ------------------------------------------------------------------------------------- helpers
    @staticmethod
    def write_log(folder: Path, train_log: TrainLog) -> dict[str, Any]:
        """``loss_log.csv`` / ``loss_log.json`` and the summary that goes into the record."""
        atomic.write_text(folder / "loss_log.csv", train_log.to_csv())
        atomic.write_json(folder / "loss_log.json", train_log.to_dict())
        steps = train_log.steps
        per_epoch = [e["seconds"] for e in train_log.epochs]
        return {"steps": len(steps), "loss_first": steps[0]["locoop_loss"] if steps else None,
                "loss_last": steps[-1]["locoop_loss"] if steps else None,
                "epoch_mean_loss": [e["mean_loss"] for e in train_log.epochs],
                "seconds": train_log.seconds, "seconds_per_epoch": sum(per_epoch) / len(per_epoch) if per_epoch else None,
                "skipped": train_log.skipped}

    @staticmethod
    def epoch_checkpointer(folder: Path, tensors_fn, meta: dict[str, Any]):
        """``on_epoch_end`` callback writing ``checkpoint.safetensors`` atomically after each epoch."""

        def save(epoch: int, step: int) -> None:
            from .checkpoint import save_tensors

            save_tensors(folder / CHECKPOINT_FILE, tensors_fn(), {**meta, "epoch": epoch + 1, "step": step})

        return save


def read_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The last epoch checkpoint of a training folder."""
    from .checkpoint import load_tensors

    return load_tensors(Path(folder) / CHECKPOINT_FILE)


def read_record(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        raise UserError(f"{folder} holds no finished fine-tuning result ({RESULT_FILE})")
    return json.loads(path.read_text())
