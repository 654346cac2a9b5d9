"""Errors that mean "the user asked for something that cannot be done" (bad input, missing data).

The CLI turns each into one line on stderr and a non-zero exit, and writes no partial results.
"""

from __future__ import annotations


class UserError(Exception):
    """A one-line, actionable problem with the user's input."""


class DataError(UserError):
    """Missing, short or unreadable data."""


class IncompatibleError(UserError):
    """A pairing that cannot work, e.g. a postprocessor that needs features a backbone does not produce."""
