"""Network modifiers and training methods (installed as ``oodbench.methods``).

Importing this package registers the built-in modifiers (``none``, ``setar``).
"""

from . import setar  # noqa: F401  (registers the modifiers)
