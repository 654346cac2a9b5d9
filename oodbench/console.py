"""Logging and terminal output: logs and progress go to stderr, tables to stdout (rich).

Progress of long work (feature extraction per split, NegLabel mining, the SeTAR search, fine-tuning) goes through
one helper, :func:`progress`, in one of three modes:

* ``bar`` — a rich progress bar with elapsed time and ETA, when stderr is a terminal;
* ``lines`` — plain log lines when it is not (CI logs, ``2> file``): one each time another 10% is done (at most
  one every 2 s), at least one every 30 s, and one when the work is finished;
* ``off`` — nothing, with ``-q`` (logging quieter than INFO) or ``quiet=True``.

``OODBENCH_PROGRESS=bar|lines|off`` overrides the choice. Usage::

    with progress() as prog:
        task = prog.add_task("features ID test", total=len(source))
        for batch in batches:
            ...
            prog.advance(task, len(batch))
            prog.update(task, info=f"loss {loss:.4f}")   # optional text after the bar / in the line

Bars of nested or overlapping ``progress()`` blocks share one live display.

Logging: :func:`setup_logging` gives the ``oodbench`` logger a rich handler on stderr. Records of other loggers
(libraries such as open_clip, which log through the root logger) go to a second handler and are shown only with
``-v`` (warnings and errors) or ``-vv`` (everything), prefixed with the logger's name; by default they are dropped,
so that a one-line error of ours is the only line on stderr.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterable, Iterator

from rich.console import Console

out = Console(soft_wrap=False)
err = Console(stderr=True)

logger = logging.getLogger("oodbench")

#: Environment variable overriding the progress mode (``bar``, ``lines`` or ``off``).
PROGRESS_ENV = "OODBENCH_PROGRESS"
PROGRESS_MODES = ("bar", "lines", "off")


def setup_logging(verbosity: int = 0) -> None:
    """``verbosity``: -1 quiet (warnings only), 0 info, 1 debug (and library warnings), 2+ library debug too."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    ours = logging.getLogger("oodbench")
    ours.handlers.clear()
    handler = RichHandler(console=err, show_time=False, show_path=verbosity > 0, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    ours.addHandler(handler)
    ours.setLevel(level)
    ours.propagate = False

    # Libraries: one handler of ours on the root logger (so that `logging.warning(...)` in a library finds a
    # handler and does not install logging's "WARNING:root:" default), silent unless -v.
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_oodbench", False)]:
        root.removeHandler(h)
    lib = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    lib.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    lib.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING if verbosity == 1 else logging.CRITICAL + 1)
    lib._oodbench = True  # type: ignore[attr-defined]
    root.addHandler(lib)
    if verbosity >= 2:
        root.setLevel(logging.DEBUG)


def progress_mode(quiet: bool | None = None, console: Console | None = None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` (see the module docstring)."""
    if quiet:
        return "off"
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in PROGRESS_MODES:
        return forced
    if logger.getEffectiveLevel() > logging.INFO:
        return "off"
    return "bar" if (console or err).is_terminal else "lines"


def progress(transient: bool = True, *, quiet: bool | None = None, mode: str | None = None,
             console: Console | None = None) -> "Progress":
    """A progress display for long work: a context manager with ``add_task``, ``advance`` and ``update``.

    Args:
        transient: bars disappear when the block ends (``bar`` mode).
        quiet: True = no output at all (e.g. ``MethodContext.quiet``).
        mode: force ``"bar"``, ``"lines"`` or ``"off"`` (default: :func:`progress_mode`).
        console: where bars go (default: stderr).
    """
    mode = mode or progress_mode(quiet, console)
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode must be one of {', '.join(PROGRESS_MODES)}, got '{mode}'")
    if mode == "bar":
        return _BarProgress(console or err, transient)
    if mode == "lines":
        return _LineProgress()
    return Progress()


def track(iterable: Iterable[Any], description: str, total: int | None = None, *, quiet: bool | None = None,
          mode: str | None = None) -> Iterator[Any]:
    """Iterate over ``iterable`` with a progress display of one task (``total`` defaults to ``len(iterable)``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with progress(quiet=quiet, mode=mode) as prog:
        task = prog.add_task(description, total=total)
        for item in iterable:
            yield item
            prog.advance(task)


class Progress:
    """The interface (and the ``off`` mode, which shows nothing). Task ids are ints."""

    def __init__(self) -> None:
        self._next = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        """A new task: ``description`` (shown before the bar / at the start of a line), ``total`` units of work
        (None: unknown), ``completed`` already done (a resumed job), ``info`` text after it."""
        self._next += 1
        return self._next - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, advance: float | None = None, completed: float | None = None,
               total: float | None = None, description: str | None = None, info: str | None = None) -> None:
        """Change a task: ``advance`` by some units, set ``completed`` / ``total`` / ``description`` / ``info``."""


class _BarProgress(Progress):
    """Tasks on one shared rich live display (nested blocks add their bars to it)."""

    _shared: Any = None  # the rich Progress of the open blocks
    _users = 0

    def __init__(self, console: Console, transient: bool):
        super().__init__()
        self.console, self.transient = console, transient
        self._tasks: dict[int, Any] = {}

    def __enter__(self) -> "_BarProgress":
        cls = _BarProgress
        if cls._shared is None:
            from rich.progress import (BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.progress import Progress as RichProgress

            cls._shared = RichProgress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"), console=self.console, transient=self.transient,
            )
            cls._shared.start()
            cls._users = 0
        cls._users += 1
        self._bar = cls._shared
        return self

    def __exit__(self, *exc: Any) -> None:
        cls = _BarProgress
        if self.transient:  # finished bars of this block vanish; the others go on
            for task in self._tasks.values():
                self._bar.remove_task(task)
        self._tasks.clear()
        cls._users -= 1
        if cls._users <= 0 and cls._shared is self._bar:
            self._bar.stop()
            cls._shared, cls._users = None, 0

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        tid = super().add_task(description, total, completed)
        self._tasks[tid] = self._bar.add_task(description, total=total, completed=completed,
                                              info=fields.get("info", ""))
        return tid

    def update(self, task: int, *, advance: float | None = None, completed: float | None = None,
               total: float | None = None, description: str | None = None, info: str | None = None) -> None:
        kw: dict[str, Any] = {k: v for k, v in (("advance", advance), ("completed", completed), ("total", total),
                                                ("description", description)) if v is not None}
        if info is not None:
            kw["info"] = info
        self._bar.update(self._tasks[task], **kw)


class _LineProgress(Progress):
    """Plain log lines: every ``every_percent`` % of the total (but not within ``min_seconds`` of the last line), at
    least every ``every_seconds`` s, and one at the end."""

    every_percent = 10.0
    min_seconds = 2.0
    every_seconds = 30.0

    def __init__(self) -> None:
        super().__init__()
        self._state: dict[int, dict[str, Any]] = {}

    def __exit__(self, *exc: Any) -> None:
        if exc and exc[0] is None:
            for tid, st in self._state.items():
                if not st["finished"] and st["done"] > st["start"]:
                    self._line(st, final=True)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        tid = super().add_task(description, total, completed)
        now = time.perf_counter()
        self._state[tid] = {"description": description, "total": total, "done": completed, "start": completed,
                            "t0": now, "last_t": now, "last_pct": self._pct(completed, total),
                            "info": fields.get("info", ""), "finished": False}
        return tid

    def update(self, task: int, *, advance: float | None = None, completed: float | None = None,
               total: float | None = None, description: str | None = None, info: str | None = None) -> None:
        st = self._state[task]
        if total is not None:
            st["total"] = total
        if description is not None:
            st["description"] = description
        if info is not None:
            st["info"] = info
        if completed is not None:
            st["done"] = completed
        if advance:
            st["done"] += advance
        if advance is None and completed is None:
            return
        now, tot = time.perf_counter(), st["total"]
        if tot and st["done"] >= tot:
            if not st["finished"]:
                self._line(st, final=True)
            return
        pct = self._pct(st["done"], tot)
        step = self.every_percent
        since = now - st["last_t"]
        crossed = pct is not None and pct // step > st["last_pct"] // step
        if (crossed and since >= self.min_seconds) or since >= self.every_seconds:
            self._line(st)
            st["last_t"], st["last_pct"] = now, pct if pct is not None else 0.0

    @staticmethod
    def _pct(done: float, total: float | None) -> float | None:
        return 100.0 * done / total if total else None

    def _line(self, st: dict[str, Any], final: bool = False) -> None:
        elapsed = time.perf_counter() - st["t0"]
        done, tot = st["done"], st["total"]
        count = f"{_num(done)}/{_num(tot)}" if tot else _num(done)
        info = f", {st['info']}" if st["info"] else ""
        if final:
            st["finished"] = True
            logger.info("%s: %s done in %s%s", st["description"], count, _duration(elapsed), info)
            return
        rate = (done - st["start"]) / elapsed if elapsed > 0 else 0.0
        eta = f", eta {_duration((tot - done) / rate)}" if tot and rate > 0 else ""
        pct = f" ({100.0 * done / tot:.0f}%)" if tot else ""
        logger.info("%s: %s%s, %s elapsed%s%s", st["description"], count, pct, _duration(elapsed), eta, info)


# ------------------------------------------------------------------------------------------------ tables
#: A label column is narrowed to its longest word, but never below this many characters (then it folds).
LABEL_FLOOR = 24


def print_table(table: Any, *, keep: int = 1, group: int = 1, console: Console | None = None) -> None:
    """Print a rich ``table`` so that no cell is cut at the console's width (a terminal's, or 80 columns when the
    output is piped): see :func:`fit_table`."""
    console = console or out
    for part in fit_table(table, console.width, keep=keep, group=group, console=console):
        # title and caption at the console's width (rich would fit them to the table's: ids in a legend would fold)
        title, caption, part.title, part.caption = part.title, part.caption, None, None
        if title:
            console.print(console.render_str(title, style="table.title") if isinstance(title, str) else title)
        console.print(part)
        if caption:
            console.print(console.render_str(caption, style="table.caption") if isinstance(caption, str)
                          else caption)


def fit_table(table: Any, width: int, *, keep: int = 1, group: int = 1, console: Console | None = None) -> list:
    """``table`` as one or more rich tables no wider than ``width``, none of whose cells is cut.

    Columns marked ``no_wrap`` (numbers) keep their full width. Label columns (the others) are narrowed, down to
    their longest word (at most :data:`LABEL_FLOOR` characters), and wrap at spaces or fold long words — they never
    end in an ellipsis. When even that is too wide, the columns after the first ``keep`` are split over several
    tables, each repeating the first ``keep`` columns and taking the others in whole groups of ``group`` (e.g. the
    FPR95 and AUROC columns of one method stay together); the title of each part says ``(part i/n)``, and the
    caption goes under the last. A single group wider than ``width`` is printed whole in its own part.
    """
    console = console or out
    cols = list(table.columns)
    head, rest = cols[:keep], cols[keep:]
    groups = [rest[i:i + max(1, group)] for i in range(0, len(rest), max(1, group))]

    def sub(columns: list) -> Any:
        return with_columns(table, [cols.index(c) for c in columns])

    if _narrowed(sub(cols), width, console) is not None or not groups:
        return [_narrowed(sub(cols), width, console) or sub(cols)]
    parts: list[list] = []
    for g in groups:
        if parts and _narrowed(sub(head + parts[-1] + g), width, console) is not None:
            parts[-1] = parts[-1] + g
        else:
            parts.append(list(g))
    tables = []
    for i, part in enumerate(parts):
        t = _narrowed(sub(head + part), width, console) or sub(head + part)
        if isinstance(t.title, str) or t.title is None:
            t.title = f"{t.title or ''} (part {i + 1}/{len(parts)})".strip()
        if i < len(parts) - 1:
            t.caption = None
        tables.append(t)
    return tables


def with_columns(table: Any, indices: list[int]) -> Any:
    """A copy of the rich ``table`` with only the columns at ``indices`` (same rows, sections, title, caption)."""
    import copy

    t = copy.copy(table)
    t.columns = [copy.copy(table.columns[i]) for i in indices]
    for i, c in enumerate(t.columns):
        c._index = i
    return t


def _narrowed(table: Any, width: int, console: Console) -> Any | None:
    """``table`` with its label columns narrowed (``max_width``) so that it is at most ``width`` wide with every
    ``no_wrap`` column whole, or None when that cannot be done. Uses rich's own column measurement."""
    wide = console.options.update_width(10_000)
    cols = table.columns
    meas = [table._measure_column(console, wide, c) for c in cols]
    pads = [table._get_padding_width(c._index) for c in cols]
    wrap = [c.width is None and not c.no_wrap for c in cols]
    fixed = table._extra_width + sum(m.maximum for m, w in zip(meas, wrap) if not w)
    floor = {i: min(m.maximum, max(m.minimum, 1), pads[i] + LABEL_FLOOR) for i, m in enumerate(meas) if wrap[i]}
    if fixed + sum(floor.values()) > width:
        return None
    avail = width - fixed
    natural = {i: meas[i].maximum for i in floor}
    if sum(natural.values()) > avail:  # the widest label columns give way first, none below its floor
        level = max(natural.values())
        while level > 1 and sum(max(floor[i], min(natural[i], level)) for i in floor) > avail:
            level -= 1
        for i in floor:
            w = max(floor[i], min(natural[i], level))
            if w < natural[i]:
                cols[i].max_width = max(1, w - pads[i])
    for i in floor:
        if cols[i].overflow == "ellipsis":
            cols[i].overflow = "fold"
    return table


def _num(x: float | None) -> str:
    return "?" if x is None else f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
