"""The ``oodbench`` command line. Each subcommand lives in its own module of this package.

Every subcommand accepts the common options after its name (``oodbench run --cache-dir X ...``):
``--device``, ``--seed``, ``--results-root``, ``--cache-dir``, ``--plugin``, ``-v/-q``.

Start-up: only the parser of the command being run is built in full; the others are listed by name and help
line. Building a parser imports no model library (torch, timm, open_clip): plugins are known from
:mod:`oodbench.manifest` and the option groups of methods come from torch-free modules, so errors in the
arguments, ``--help``, ``oodbench list`` and ``oodbench data layout`` answer at once
(``tests/benchmarks/test_bench_cli_startup.py``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rich.markup import escape
from rich_argparse import RichHelpFormatter

from oodbench.version import __version__
from oodbench.cli.common import Parser, common_options, user_errors
from oodbench.console import err, setup_logging

# Subcommand modules, in the order `oodbench --help` lists them. Each exposes `add_parser(sub, parents)`.
COMMANDS = ("run_cmd", "search_cmd", "finetune_cmd", "list_cmd", "metrics_cmd", "data_cmd", "digits_cmd", "runs_cmd", "plot_cmd",
            "leaderboard_cmd", "tables_cmd", "sweep_cmd")

log = logging.getLogger("oodbench")


class _Listed(Exception):
    """Raised by :class:`_OnlyListed` once a command not being run is listed: the rest of its parser is skipped."""


class _OnlyListed:
    """Stands in for the subparsers action while the command modules add their parsers: the command being run
    gets its full parser, every other one only an entry with its name and help line (for ``--help`` and the
    list of valid commands)."""

    def __init__(self, sub, wanted: str | None):
        self._sub, self._wanted = sub, wanted

    def add_parser(self, name: str, **kwargs):
        if self._wanted in (name, *kwargs.get("aliases", ())):
            return self._sub.add_parser(name, **kwargs)
        self._sub.add_parser(name, help=kwargs.get("help"), aliases=kwargs.get("aliases", ()), add_help=False)
        raise _Listed

    def __getattr__(self, attr):
        return getattr(self._sub, attr)


def build_parser(argv: list[str] | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The ``oodbench`` parser. With ``full=False`` only the parser of the command ``argv`` names (its first
    item) is built in full, which is what :func:`main` needs."""
    parser = Parser(
        prog="oodbench",
        description="OOD-detection benchmark suite: SeTAR low-rank modifiers composed with any OOD score.",
        formatter_class=RichHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"oodbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    parents = [common_options()]
    if full:
        for name in COMMANDS:
            importlib.import_module(f"oodbench.cli.{name}").add_parser(sub, parents)
        return parser
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    only = _OnlyListed(sub, wanted)
    first = f"{wanted}_cmd" if wanted and f"{wanted}_cmd" in COMMANDS else None
    if first is not None:  # `oodbench NAME ...` is (by convention) in NAME_cmd: nothing else is needed
        try:
            importlib.import_module(f"oodbench.cli.{first}").add_parser(only, parents)
            return parser
        except _Listed:
            pass
    for name in COMMANDS:  # top-level help, an unknown command or an alias: every command's name and help
        if name == first:
            continue
        try:
            importlib.import_module(f"oodbench.cli.{name}").add_parser(only, parents)
        except _Listed:
            pass
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` ran (``oodbench runs list`` -> that of ``runs list``)."""
    for dest in ("command", "runs_command", "data_command", "digits_command"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, dest, None)
        if not subs or name not in subs[0].choices:
            continue
        parser = subs[0].choices[name]
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv, full=False)
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported by the parser of the command they were given to
            _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # an argument error (its line is printed) is exit code 2 like every other error
        if exc.code == 2:
            return 2
        raise  # --help, --version
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
