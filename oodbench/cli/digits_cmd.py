"""``oodbench digits``: the embedded digits benchmark and its ``digits_clip`` model.

``oodbench digits info`` shows the splits and the shipped model's numbers; ``oodbench digits train --out DIR``
reproduces the shipped weights (same seed and epochs: same recipe; use the folder with
``--backbone digits_clip --pretrained DIR``).
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from oodbench.cli.common import add_command
from oodbench.console import out
from oodbench.errors import UserError
from oodbench.options import at_least


def add_parser(sub, parents) -> None:
    p = add_command(sub, "digits", parents, help="the embedded digits benchmark: show it, or retrain its digits_clip model")
    dsub = p.add_subparsers(dest="digits_command", metavar="ACTION", title="actions")

    info = add_command(dsub, "info", parents, help="splits of the digits benchmark and the numbers of the digits_clip weights")
    info.add_argument("--weights", default=None, metavar="DIR", help="a folder from `digits train` (default: the shipped weights)")
    info.set_defaults(handler=run_info)

    train = add_command(
        dsub, "train", parents,
        help="train digits_clip from scratch on the digits 0-5 training split (CPU, a few minutes)",
        description="Train digits_clip from scratch and write digits_clip.json, digits_clip.safetensors (fp16) and "
                    "training.json into --out. The shipped weights are `oodbench digits train --out DIR` with the "
                    "defaults (--seed 0, the default epochs). Runs on CPU whatever --device says, so that "
                    "the result does not depend on the accelerator.",
    )
    train.add_argument("--out", required=True, metavar="DIR", help="folder to write the weights into")
    train.add_argument("--epochs", type=at_least(1), default=None, help="training epochs (default: those of the shipped weights)")
    train.add_argument("--threads", type=at_least(1), default=2, help="CPU threads (default 2)")
    train.set_defaults(handler=run_train)
    p.set_defaults(handler=lambda args: p.print_help() or 0)


def run_info(args) -> int:
    from oodbench.backbones import digits as model
    from oodbench.benchmark import get_benchmark

    DIGITS = get_benchmark("digits")
    table = Table(title="digits benchmark (embedded, offline)", title_justify="left")
    for col in ("role", "split", "group", "images", "source"):
        table.add_column(col, overflow="fold")
    rows = [("ID test", DIGITS.id_test), ("ID val", DIGITS.id_val), ("ID fit", DIGITS.id_fit)]
    rows += [("OOD", s) for s in DIGITS.ood] + [("OOD val", s) for s in DIGITS.ood_val]
    for role, s in rows:
        table.add_row(role, s.name, s.group, str(s.expected), s.source)
    out.print(table)
    out.print(f"classes: {', '.join(DIGITS.class_names)}; prompt: {DIGITS.prompt!r}")

    meta = model.read_metadata(args.weights)
    cfg = model.read_config(args.weights)
    where = args.weights or "shipped"
    if not meta:
        out.print(f"digits_clip ({where}): no training.json")
        return 0
    t = Table(title=f"digits_clip ({where})", title_justify="left")
    t.add_column("quantity")
    t.add_column("value", overflow="fold")
    t.add_row("reproduce", meta.get("command", ""))
    t.add_row("training time", f"{meta.get('train_seconds')} s on {meta.get('threads')} CPU threads ({meta.get('torch')})")
    t.add_row("ID test accuracy", f"{100 * meta['accuracy_id_test']:.2f}")
    t.add_row("ID val accuracy", f"{100 * meta['accuracy_id_val']:.2f}")
    for name, v in meta["mcm_auroc"].items():
        t.add_row(f"MCM AUROC {name}", f"{100 * v:.2f}")
    t.add_row("weights", f"{meta.get('weights_file_bytes', 0) / 2**20:.2f} MiB fp16, "
                         f"{meta.get('trainable_parameters', 0):,} trained parameters; token embedding from seed "
                         f"{cfg['token_embedding']['seed']}")
    out.print(t)
    return 0


def training_data(name: str = "digits"):
    """The images ``digits_clip`` trains and is measured on, from the registered benchmark ``name``: its ID fit
    split is the training set, ID val the held-out set, ID test and the OOD test splits the evaluation."""
    from oodbench.backbones.digits_training import TrainingData
    from oodbench.benchmark import Role, get_benchmark

    spec = get_benchmark(name)
    resolved = spec.resolve()
    missing = [role for role, src in (("ID fit", resolved.id_fit), ("ID val", resolved.id_val)) if src is None]
    if missing:
        raise UserError(f"benchmark {name} has no {' and no '.join(missing)} split: "
                        "digits_clip cannot be trained on it")

    def arrays(source):
        if not hasattr(source, "images"):
            raise UserError(f"benchmark {name}: split {source.name} is not held in memory; digits_clip trains on "
                            "embedded benchmarks only")
        return source.images, source.labels

    ood = resolved.splits(Role.OOD)
    return TrainingData(
        class_names=tuple(spec.class_names),
        prompt=spec.prompt,
        train=arrays(resolved.id_fit),
        val=arrays(resolved.id_val),
        test=arrays(resolved.id_test),
        ood={s.name: arrays(s.source)[0] for s in ood},
        groups={s.name: s.group for s in ood},
        fingerprints={s.name: s.source.fingerprint() for s in resolved.splits()},
        benchmark=spec.name,
    )


def run_train(args) -> int:
    from oodbench.backbones.digits_training import TrainConfig, train_digits_clip

    seed = 0 if args.seed is None else args.seed
    cfg = TrainConfig(seed=seed, threads=args.threads)
    if args.epochs is not None:
        if args.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {args.epochs}")
        cfg.epochs = args.epochs
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    dest = Path(args.out)
    if dest.exists() and not dest.is_dir():
        raise UserError(f"--out {dest} exists and is not a folder")
    meta = train_digits_clip(dest, training_data(), cfg)
    out.print(f"wrote {dest}: ID test accuracy {100 * meta['accuracy_id_test']:.2f}, MCM AUROC "
              + ", ".join(f"{k} {100 * v:.2f}" for k, v in meta["mcm_auroc"].items())
              + f" ({meta['train_seconds']:.0f} s)")
    return 0
