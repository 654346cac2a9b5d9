"""Typed command-line values, shared by the CLI and the option groups of method plugins (``argparse`` ``type=``).

A value out of range is refused while the arguments are parsed — before any model library is imported — in a
message that names the flag as the user typed it (``oodbench run: error: argument --epochs: must be >= 1, got
0``).
"""

from __future__ import annotations

import argparse
from typing import Callable


def at_least(minimum: int | float, kind: type = int) -> Callable[[str], int | float]:
    """An argparse ``type`` parsing ``kind`` (int or float) and refusing values below ``minimum``."""

    def parse(text: str):
        value = _parse(text, kind)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {minimum}"
    return parse


def positive(kind: type = float) -> Callable[[str], int | float]:
    """An argparse ``type`` parsing ``kind`` and refusing zero, negative and non-finite values."""

    def parse(text: str):
        value = _parse(text, kind)
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} > 0"
    return parse


def _parse(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects {'an integer' if kind is int else 'a number'}, got '{text}'") \
            from None
    if value != value:  # NaN
        raise argparse.ArgumentTypeError(f"expects a number, got '{text}'")
    return value
