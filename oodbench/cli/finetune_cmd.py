"""``oodbench finetune``: train a fine-tuning method (SeTAR+FT, LoRA, LoCoOp, ...) on a benchmark's ID val split.

Writes the loss log (CSV / JSON, one row per step), the trained tensors and — for weight methods — the merged
model as a file that ``oodbench run --backbone NAME --pretrained FILE`` evaluates; for LoCoOp the prompts file
that ``oodbench run --method locoop --prompts FILE`` evaluates. The result is also cached (keyed by every
ingredient), so ``oodbench run --method NAME`` with the same settings reuses it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rich.table import Table

from oodbench.cli.benchmark_args import add_benchmark_args, benchmark_from_args
from oodbench.cli.common import (add_backbone_args, add_command, backbone_from_args, cache_dir, check_early,
                                 check_out_folder, results_root)
from oodbench.console import out
from oodbench.errors import UserError

log = logging.getLogger("oodbench")



def _trainers() -> list[str]:
    from oodbench.cli.method_args import method_names

    return method_names(trains=True)


def add_parser(sub, parents) -> None:
    from oodbench.cli.method_args import add_method_args

    p = add_command(
        sub, "finetune", parents,
        help="fine-tune a method (setar-ft, lora, locoop) on the ID val split; writes loss log and weights/prompts",
        description="Train a fine-tuning method with the LoCoOp loss on the benchmark's ID val split (the split the "
                    "SeTAR search uses), with the published settings of the backbone family unless overridden. "
                    "Writes finetune.json, loss_log.csv/json (one row per step), the trained tensors, and the merged "
                    "weights (merged.safetensors, or merged/ for digits_clip) for `oodbench run --pretrained`, or "
                    "prompts.safetensors for `oodbench run --method locoop --prompts FILE`.",
    )
    p.add_argument("--method", required=True, metavar="NAME",
                   help=f"the method to train ({', '.join(_trainers())})")
    add_backbone_args(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default <results-root>/finetune/<benchmark>-<backbone>-<method>-<key>)")
    add_benchmark_args(p)
    add_method_args(p, only=_trainers())
    p.set_defaults(handler=run)


def run(args) -> int:
    from oodbench.cache import CacheRoot
    from oodbench.method import MethodContext, method_class
    from oodbench.runtime import resolve_device, seed_everything, set_float32_mode

    cls = method_class(args.method)
    if not cls.trains:
        raise UserError(f"method {cls.registry_name} trains nothing; choose one of {', '.join(_trainers())}")
    method = cls(**cls.options_from_args(args))
    if method.options.get("prompts_file"):
        raise UserError("--prompts evaluates learned prompts: use it with `oodbench run --method locoop`")
    check_early(args)
    check_out_folder(args.out)  # before the training, not after it
    seed = args.seed if args.seed is not None else None
    seed_everything(seed or 0)
    device = resolve_device(args.device)
    set_float32_mode(False)
    resolved = benchmark_from_args(args)
    backbone = backbone_from_args(args, resolved, device)
    ctx = MethodContext(backbone=backbone, benchmark=resolved, caches=CacheRoot(cache_dir(args)), seed=seed,
                        device=device, on_bad=args.on_bad, quiet=args.quiet > 0)
    method.check(ctx)
    modification = method.prepare(ctx)
    from oodbench.results.store import id_part

    safe = id_part(backbone.name)  # bounded and path-safe, as in run ids (a long local-dir: path)
    dest = Path(args.out) if args.out else (
        results_root(args) / "finetune" / f"{resolved.spec.name}-{safe}-{method.name}-{modification.key[:12]}")
    lines = method.export(ctx, modification, dest)
    out.print(summary_table(modification.record))
    for line in lines:
        out.print(line)
    out.print(f"written to {dest} (finetune.json, loss_log.csv, loss_log.json, ...); cache key {modification.key}")
    return 0


def summary_table(record: dict) -> Table:
    """What was trained and how the loss went (one row per item, so it fits a narrow terminal)."""
    t = record.get("train", {})
    table = Table(title=f"{record.get('display_name', record.get('name'))} on {record.get('val_split')}",
                  title_justify="left", show_header=False)
    table.add_column("item")
    table.add_column("value", justify="right")

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    rows = [("trainable parameters", f"{record.get('trainable_params', 0):,}"),
            ("epochs / steps", f"{t.get('epochs')} / {record.get('steps')}"),
            ("batch, lr, schedule", f"{t.get('batch_size')}, {f(t.get('lr'), 'g')}, {t.get('schedule')}"),
            ("LoCoOp lambda, K", f"{f(t.get('lam'), 'g')}, {t.get('top_k')}"),
            ("seed, precision, device", f"{t.get('seed')}, {t.get('precision')}, {record.get('device')}"),
            ("loss first -> last step", f"{f(record.get('loss_first'), '.4f')} -> {f(record.get('loss_last'), '.4f')}"),
            ("mean loss per epoch", " ".join(f"{v:.4f}" for v in record.get("epoch_mean_loss") or [])),
            ("seconds per epoch", f(record.get("seconds_per_epoch"), ".2f"))]
    for k, v in rows:
        table.add_row(k, v)
    return table
