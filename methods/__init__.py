"""Registered methods and modifiers (installed as ``oodbench.methods``).

The built-in methods (``none``, ``setar``, ``setar-ft``, ``lora``, ``locoop``) and modifiers (``none``, ``setar``)
are listed in :mod:`oodbench.manifest` and their modules imported when first requested from the registry, so
importing this package imports none of them. A method is a :class:`oodbench.method.Method` subclass registered
in the ``methods`` kind.
"""
