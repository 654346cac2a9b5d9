"""Options every subcommand accepts, and the errors the CLI reports as one line."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich_argparse import RichHelpFormatter

from oodbench.runtime import DEVICES, default_cache_dir, default_results_root


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), pointing to the command's ``--help``
    instead of printing the whole usage; every ``oodbench`` (sub)command parser is one."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--device", default="auto", metavar="{auto,cpu,cuda[:N]}",
                   help=f"where models run ({'/'.join(DEVICES)}; auto = CUDA when present)")
    g.add_argument("--seed", type=int, default=None,
                   help="random seed (default 0; methods with a published seed, e.g. SeTAR's random prune (5), use "
                        "theirs unless --seed is given)")
    g.add_argument("--results-root", type=str, default=None,
                   help=f"folder of stored runs (default $OODBENCH_RESULTS_ROOT or {default_results_root()})")
    g.add_argument("--cache-dir", type=str, default=None,
                   help=f"feature cache (default $OODBENCH_CACHE_DIR or {default_cache_dir()})")
    g.add_argument("--plugin", action="append", metavar="FILE.py",
                   help="import a Python file that registers backbones/postprocessors/... (repeatable)")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    g.add_argument("-q", "--quiet", action="count", default=0, help="less logging, no progress bars")
    return p


def add_command(sub, name: str, parents, help: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=parents, help=help, description=description or help,
                          formatter_class=RichHelpFormatter)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input: reported in one line, exit code 2."""
    from oodbench.errors import UserError
    from oodbench.metrics import MetricInputError
    from oodbench.registry import RegistryError

    return (UserError, MetricInputError, RegistryError, FileNotFoundError)


def results_root(args) -> Path:
    """``--results-root`` (default ``$OODBENCH_RESULTS_ROOT`` or ./runs); a file there is a one-line error."""
    from oodbench.errors import UserError

    root = Path(args.results_root) if args.results_root else default_results_root()
    if root.exists() and not root.is_dir():
        raise UserError(f"results root {root} is a file, not a folder; pass --results-root DIR")
    return root


def check_early(args) -> None:
    """The value checks that need no model library, made by ``run``, ``search``, ``finetune`` and ``sweep`` before
    they import one (torch takes seconds to import): a file as ``--results-root`` / ``--cache-dir``, malformed or
    reserved set names (``--ood/--near-ood/--csid NAME=DIR``), unknown ``--post`` names. Each is a one-line
    :class:`~oodbench.errors.UserError` naming the flag as typed (``tests/benchmarks/test_bench_cli_startup.py``
    times them)."""
    from oodbench.benchmark import check_set_name
    from oodbench.registry import get, registry

    if hasattr(args, "results_root"):
        results_root(args)
    if hasattr(args, "cache_dir"):
        cache_root(args)
    for dest in ("ood", "near_ood", "csid"):
        flag = "--" + dest.replace("_", "-")
        for name in parse_named(getattr(args, dest, None), flag, "DIR"):
            check_set_name(name, flag)
    for post in (getattr(args, "post", None) or "").split(","):
        post = post.strip()
        if post and post != "all" and post not in registry("postprocessors"):
            get("postprocessors", post)  # the registry's one-line error: the known names, close matches


def check_out_folder(out: str | None, flag: str = "--out") -> None:
    """An output folder option that names an existing file (or lies under one) is a one-line error."""
    from oodbench.errors import UserError

    if out is None:
        return
    path = Path(out)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{flag} {out}: {p} is a file; {flag} names a folder (created when missing)")
            break


def cache_dir(args) -> Path:
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def cache_root(args):
    """The :class:`~oodbench.cache.CacheRoot` of ``--cache-dir`` (a file there is a one-line error)."""
    from oodbench.cache import CacheRoot

    return CacheRoot(cache_dir(args))


def parse_named(items: list[str] | None, flag: str, what: str = "PATH") -> dict[str, str]:
    """``["a=x", "b=y"]`` -> ``{"a": "x", "b": "y"}``; malformed items and repeated names are one-line errors."""
    from oodbench.errors import UserError

    named: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UserError(f"{flag} expects NAME={what}, got '{item}'")
        if name in named:
            raise UserError(f"{flag}: the name '{name}' is given twice")
        named[name] = value
    return named


def add_backbone_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", default=None, metavar="NAME",
                        help="registered backbone (`oodbench list backbones`), or open_clip:<model> / timm:<model> "
                             "(default: the benchmark's own, e.g. digits_clip on the digits benchmark)")
    parser.add_argument("--pretrained", default=None, metavar="TAG|PATH",
                        help="weights: a pretrained tag (openai), a checkpoint file, local-dir:DIR, a Hugging Face "
                             "CLIP folder, or 'random'")


def backbone_from_args(args, resolved, device: str):
    """The backbone the options name (default: the benchmark's own, e.g. digits_clip), on ``device``."""
    from oodbench.backbones import create_backbone
    from oodbench.errors import UserError

    name = args.backbone or resolved.spec.default_backbone
    if name is None:
        raise UserError(f"--backbone is required for benchmark '{resolved.spec.name}' (see `oodbench list backbones`)")
    return create_backbone(name, args.pretrained).to(device)
