"""Options every subcommand accepts, and the errors the CLI reports as one line."""

from __future__ import annotations

import argparse

from rich_argparse import RichHelpFormatter

from oodbench.runtime import DEVICES, default_cache_dir, default_results_root


def common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--device", default="auto", metavar="{auto,cpu,cuda[:N]}",
                   help=f"where models run ({'/'.join(DEVICES)}; auto = CUDA when present)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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


def results_root(args) -> "Path":  # noqa: F821
    from pathlib import Path

    return Path(args.results_root) if args.results_root else default_results_root()


def cache_dir(args) -> "Path":  # noqa: F821
    from pathlib import Path

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()
