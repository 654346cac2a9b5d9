"""The version of oodbench (the ground floor: imports nothing, so any module can record it)."""

__version__ = "0.1.0"
