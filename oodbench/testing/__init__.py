"""Conformance checks for plugin authors: the suites oodbench runs over every registered object, exported.

Like scikit-learn's ``parametrize_with_checks``: a plugin's own test file runs every check that applies to its
objects, one pytest test per (object, check)::

    from oodbench.testing import parametrize_with_checks

    from mypkg.scores import MyScore

    @parametrize_with_checks("postprocessors", [MyScore])
    def test_my_score(obj, check):
        check(obj)

Kinds and what ``objects`` holds:

* ``"postprocessors"`` — postprocessor classes (:mod:`oodbench.testing.postprocessors`);
* ``"modifiers"`` — modifier classes, checked on a tiny CLIP and a tiny timm ViT (:mod:`oodbench.testing.modifiers`);
* ``"backbones"`` — registered names, zero-argument factories or built backbones (:mod:`oodbench.testing.backbones`);
* ``"methods"`` — :class:`~oodbench.method.Method` subclasses (:mod:`oodbench.testing.methods`).

An entry may be a ``pytest.param(obj, marks=...)`` to mark all of its checks (e.g. ``slow``). Each check is a
plain callable ``check(obj)`` that raises ``AssertionError`` (or the contract's error) when the object breaks the
contract, so the checks run outside pytest too: ``for check in checks("postprocessors", MyScore): check(MyScore)``.
:func:`registered` lists the registered objects of a kind (oodbench's own tests run the suites over it).

The checks need pytest (``pytest.raises``) and build their inputs in memory (:mod:`oodbench.testing.fixtures`).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable, Iterator

__all__ = ["Check", "KINDS", "checks", "parametrize_with_checks", "registered"]

#: The kinds with a conformance suite, and the module holding it.
KINDS = {"postprocessors": "oodbench.testing.postprocessors", "modifiers": "oodbench.testing.modifiers",
         "backbones": "oodbench.testing.backbones", "methods": "oodbench.testing.methods"}


class Check:
    """One check, bound to its settings: ``check(obj)`` runs it.

    Args:
        func: ``func(obj, **kwargs)``.
        name: the test id part (default: the function name).
        marks: pytest marks for this check (e.g. ``pytest.mark.slow``).
        **kwargs: bound settings (e.g. ``backbone="test_clip_tiny"``).
    """

    def __init__(self, func: Callable[..., None], name: str | None = None, marks: tuple = (), **kwargs: Any):
        self.func = func
        self.kwargs = kwargs
        self.marks = tuple(marks)
        self.name = name or func.__name__
        if kwargs:
            self.name += "[" + ",".join(str(v) for v in kwargs.values()) + "]"
        self.__name__ = self.name
        self.__doc__ = func.__doc__

    def __call__(self, obj: Any) -> None:
        self.func(obj, **self.kwargs)

    def __repr__(self) -> str:
        return f"Check({self.name})"


def _suite(kind: str):
    if kind not in KINDS:
        raise ValueError(f"no conformance suite for kind '{kind}'; known: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def checks(kind: str, obj: Any) -> Iterator[Check]:
    """The checks of ``kind`` that apply to ``obj``."""
    yield from _suite(kind).checks_for(obj)


def registered(kind: str) -> list[Any]:
    """Every registered object of ``kind`` (classes; registered names for backbones), sorted by name."""
    return _suite(kind).registered()


def parametrize_with_checks(kind: str, objects: Iterable[Any]):
    """A ``pytest.mark.parametrize("obj, check", ...)`` over every (object, applicable check) pair.

    Args:
        kind: ``"postprocessors"``, ``"modifiers"``, ``"backbones"`` or ``"methods"``.
        objects: what to check (see the module docstring); ``pytest.param(obj, marks=...)`` entries keep their marks.

    Test ids read ``<object>-<check>``, e.g. ``mcm-check_fit_returns_self``.
    """
    import pytest

    suite = _suite(kind)
    params = []
    for entry in objects:
        marks: tuple = ()
        if isinstance(entry, type(pytest.param(None))):
            (obj,), marks = entry.values, tuple(entry.marks)
        else:
            obj = entry
        for check in suite.checks_for(obj):
            params.append(pytest.param(obj, check, marks=(*marks, *check.marks),
                                       id=f"{suite.object_id(obj)}-{check.name}"))
    return pytest.mark.parametrize("obj, check", params)
