"""The ``oodbench`` command line. Each subcommand lives in its own module of this package.

Every subcommand accepts the common options after its name (``oodbench run --cache-dir X ...``):
``--device``, ``--seed``, ``--results-root``, ``--cache-dir``, ``--plugin``, ``-v/-q``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rich.markup import escape
from rich_argparse import RichHelpFormatter

from oodbench import __version__
from oodbench.cli.common import common_options, user_errors
from oodbench.console import err, setup_logging

# Subcommand modules, in the order `oodbench --help` lists them. Each exposes `add_parser(sub, parents)`.
COMMANDS = ("run_cmd", "search_cmd", "list_cmd", "metrics_cmd", "data_cmd", "digits_cmd", "runs_cmd", "plot_cmd",
            "leaderboard_cmd")

log = logging.getLogger("oodbench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oodbench",
        description="OOD-detection benchmark suite: SeTAR low-rank modifiers composed with any OOD score.",
        formatter_class=RichHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"oodbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    parents = [common_options()]
    for name in COMMANDS:
        importlib.import_module(f"oodbench.cli.{name}").add_parser(sub, parents)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    setup_logging(args.verbose - args.quiet)
    try:
        from oodbench.registry import load_plugin

        for path in args.plugin or ():
            load_plugin(path)
        return int(args.handler(args) or 0)
    except user_errors() as exc:
        err.print(f"[bold red]oodbench {args.command}: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
