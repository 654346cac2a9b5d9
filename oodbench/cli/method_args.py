"""Method options on the command line: every registered method adds its own group, and the chosen ones are
turned into constructor options. The CLI names no method: it asks the registry."""

from __future__ import annotations

import argparse
from typing import Any


def method_names(produces: str | None = None, trains: bool | None = None) -> list[str]:
    """Registered method names (optionally only those producing ``produces`` / training)."""
    from oodbench.method import method_class
    from oodbench.registry import names

    out = []
    for n in names("methods"):
        try:
            cls = method_class(n)
        except Exception:  # a broken plugin must not break `--help`
            continue
        if produces is not None and cls.produces != produces:
            continue
        if trains is not None and cls.trains != trains:
            continue
        out.append(n)
    return out


def add_method_args(parser: argparse.ArgumentParser, only: list[str] | None = None, **kwargs: Any) -> None:
    """Let every registered method (or those in ``only``) add its option group to ``parser``."""
    from oodbench.method import method_class

    owners: dict[str, tuple[str, str]] = {}  # dest -> (flag, method)
    for n in only if only is not None else method_names():
        before = set(map(id, parser._actions))
        try:
            method_class(n).add_arguments(parser, **kwargs)
        except argparse.ArgumentError:
            pass  # two methods declaring the same option (e.g. --plan): the first one's stays
        for action in parser._actions:
            if id(action) not in before and action.option_strings:
                owners.setdefault(action.dest, (action.option_strings[0], n))
    parser.set_defaults(method_option_owners=owners)


def check_unused_options(args: argparse.Namespace, methods: tuple[str, ...]) -> None:
    """An option of a method that is not run (``--plan`` without ``--method setar``) is a one-line error."""
    from oodbench.errors import UserError

    for dest, (flag, owner) in getattr(args, "method_option_owners", {}).items():
        if owner not in methods and getattr(args, dest, None) is not None and not _read_by(methods, args, dest):
            raise UserError(f"{flag} is an option of method {owner}, which this run does not use; "
                            f"add --method {owner}")


def _read_by(methods: tuple[str, ...], args: argparse.Namespace, dest: str) -> bool:
    """Whether one of ``methods`` takes the option too (flags shared by methods: --plan, --epochs, ...)."""
    from oodbench.method import method_class

    blank = argparse.Namespace(**{**vars(args), dest: None})
    return any(method_class(m).options_from_args(args) != method_class(m).options_from_args(blank) for m in methods)


def parse_methods(text: str | None) -> tuple[str, ...]:
    """``"setar"`` -> ``("none", "setar")``: the baseline methods (the vanilla model) are always evaluated
    first, beside the chosen ones."""
    from oodbench.method import method_class

    chosen = [method_class(t.strip()).registry_name for t in (text or "").split(",") if t.strip()]
    baselines = [n for n in method_names() if method_class(n).baseline]
    return tuple(dict.fromkeys(baselines + chosen))


def method_options(methods: tuple[str, ...], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Constructor options of each chosen method from the parsed command line."""
    from oodbench.method import method_class

    return {m: method_class(m).options_from_args(args) for m in methods}
