"""Logging and terminal output: logs and progress go to stderr, tables to stdout (rich)."""

from __future__ import annotations

import logging

from rich.console import Console

out = Console(soft_wrap=False)
err = Console(stderr=True)

logger = logging.getLogger("oodbench")


def setup_logging(verbosity: int = 0) -> None:
    """``verbosity``: -1 quiet (warnings only), 0 info, 1+ debug."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    root = logging.getLogger("oodbench")
    root.handlers.clear()
    handler = RichHandler(console=err, show_time=False, show_path=verbosity > 0, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def progress(transient: bool = True):
    """A rich progress bar with ETA on stderr; disabled when logging is quieter than INFO."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
        disable=logging.getLogger("oodbench").getEffectiveLevel() > logging.INFO,
    )
