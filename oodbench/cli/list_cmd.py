"""``oodbench list [KIND] [PATTERN]``: what is registered, as a rich table."""

from __future__ import annotations

from rich.table import Table

from oodbench.cli.common import add_command
from oodbench.console import out
from oodbench.registry import KINDS, registry


def add_parser(sub, parents) -> None:
    p = add_command(sub, "list", parents,
                    help="list registered backbones, modifiers, postprocessors, benchmarks, methods, papers")
    p.add_argument("kind", nargs="?", default=None, help=f"one of {', '.join(KINDS)} (default: all)")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard on names, e.g. '*mcm*'")
    p.set_defaults(handler=run)


def run(args) -> int:
    kinds = [registry(args.kind).kind] if args.kind else list(KINDS)
    table = Table(title="oodbench registry", title_justify="left")
    for col in ("kind", "name", "aliases", "source", "summary"):
        table.add_column(col, overflow="fold")
    for kind in kinds:
        for entry in registry(kind).entries(args.pattern):
            table.add_row(kind, entry.name, ", ".join(entry.aliases), entry.source, entry.summary)
    out.print(table)
    return 0
