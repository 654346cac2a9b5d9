"""Registered methods and modifiers (installed as ``oodbench.methods``).

Importing this package registers the built-in methods (``none``, ``setar``) and modifiers (``none``, ``setar``).
A method is a :class:`oodbench.method.Method` subclass registered in the ``methods`` kind.
"""

from . import none, setar  # noqa: F401  (registers the methods and modifiers)
from . import locoop, lora, setar_ft  # noqa: F401,E402  (register the fine-tuning methods)
