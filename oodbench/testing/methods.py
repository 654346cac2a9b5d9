"""Conformance checks of methods (:class:`~oodbench.method.Method` subclasses registered in the ``methods`` kind).

Each check takes the method **class**:

* it is a ``Method`` subclass with a display name, a docstring (``oodbench list methods`` shows its first line)
  and valid class attributes (``produces``, ``backbone_kinds``, ``option_names``);
* :meth:`~oodbench.method.Method.add_arguments` adds only options whose default is None (so an option the user
  did not pass never overrides a preset), and an empty command line gives no options
  (:meth:`~oodbench.method.Method.options_from_args` returns ``{}``); unknown constructor options are a
  :class:`~oodbench.errors.UserError`;
* ``check`` / ``prepare`` on a tiny backbone (``test_clip_tiny``, or ``test_vit_tiny`` for classifier-only methods)
  and a tiny in-memory benchmark give a :class:`~oodbench.method.Modification` with a JSON-able record; prepare
  leaves the model pristine; apply / restore leaves every weight bit-identical; the key is the same for a second
  prepare on the same cache, and for one on an empty cache (the result is deterministic).

The prepare check runs whatever the method does (a search, a training). Methods for which that is heavy declare
``conformance_slow = True``; methods that train (``trains = True``) are slow unless they declare
``conformance_slow = False``. A slow check carries the ``slow`` pytest mark. A method whose defaults do not fit
the tiny models (or are needlessly heavy for a contract check) declares the constructor options the prepare check
uses, e.g. ``conformance_options = {"n_ctx": 4, "epochs": 1}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Iterator

import pytest

from oodbench.errors import UserError

from . import Check
from .fixtures import TINY_CLASSIFIER, TINY_CLIP, tiny_backbone, tiny_benchmark
from .modifiers import assert_unchanged, snapshot

#: What :meth:`Method.prepare` may produce.
PRODUCES = ("nothing", "plan", "checkpoint", "prompts")
BACKBONE_KINDS = ("clip", "classifier")


def registered() -> list[type]:
    from oodbench.registry import get, names

    return [get("methods", n) for n in names("methods")]


def object_id(cls: type) -> str:
    return getattr(cls, "registry_name", "") or cls.__name__


def is_slow(cls: type) -> bool:
    """``conformance_slow`` when the class declares it, else whether the method trains."""
    slow = getattr(cls, "conformance_slow", None)
    return bool(getattr(cls, "trains", False)) if slow is None else bool(slow)


def conformance_options(cls: type) -> dict:
    """The constructor options of the prepare check (``conformance_options``, default none)."""
    return dict(getattr(cls, "conformance_options", None) or {})


def checks_for(cls: type) -> Iterator[Check]:
    yield Check(check_method_class)
    yield Check(check_cli_options_default_to_none)
    yield Check(check_empty_command_line_gives_no_options)
    yield Check(check_prepare_is_reversible_and_stable, marks=(pytest.mark.slow,) if is_slow(cls) else ())


def _parser(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conformance", add_help=False, exit_on_error=False)
    cls.add_arguments(parser)
    return parser


# ------------------------------------------------------------------------------------------------- checks
def check_method_class(cls: type) -> None:
    """A Method subclass with a display name, a docstring and valid declarations."""
    from oodbench.method import Method

    assert isinstance(cls, type) and issubclass(cls, Method), f"{cls!r} is not a oodbench.method.Method subclass"
    assert isinstance(cls.display_name, str) and cls.display_name.strip(), \
        "set display_name (the name tables show, e.g. 'SeTAR+FT')"
    assert cls.title() == cls.display_name
    assert (cls.__doc__ or "").strip(), "give the class a docstring (its first line is listed by oodbench)"
    assert cls.produces in PRODUCES, f"produces must be one of {PRODUCES}, not {cls.produces!r}"
    assert cls.backbone_kinds and set(cls.backbone_kinds) <= set(BACKBONE_KINDS), \
        f"backbone_kinds must be a non-empty subset of {BACKBONE_KINDS}, not {cls.backbone_kinds!r}"
    assert isinstance(cls.option_names, tuple) and all(isinstance(o, str) for o in cls.option_names), \
        "option_names must be a tuple of strings"
    for flag in ("reads_val", "trains", "baseline"):
        assert isinstance(getattr(cls, flag), bool), f"{flag} must be a bool"


def check_cli_options_default_to_none(cls: type) -> None:
    """Every option ``add_arguments`` adds defaults to None (an option not given never overrides a preset)."""
    parser = argparse.ArgumentParser(prog="conformance", add_help=False, exit_on_error=False)
    before = set(map(id, parser._actions))
    cls.add_arguments(parser)
    bad = [f"{a.option_strings[0] if a.option_strings else a.dest} (default {a.default!r})"
           for a in parser._actions if id(a) not in before and a.default is not None]
    assert not bad, f"options whose default is not None: {', '.join(bad)}"


def check_empty_command_line_gives_no_options(cls: type) -> None:
    """``options_from_args`` of an empty command line is ``{}``; the class builds from it; unknown options are
    refused with a UserError."""
    args = _parser(cls).parse_args([])
    opts = cls.options_from_args(args)
    assert opts == {}, f"options_from_args of an empty command line must be {{}}, got {opts!r}"
    cls(**opts)
    with pytest.raises(UserError):
        cls(not_an_option_of_any_method=1)


def check_prepare_is_reversible_and_stable(cls: type) -> None:
    """check + prepare on a tiny backbone and benchmark: a Modification whose apply/restore is bit-exact and whose
    key does not change from one prepare to the next."""
    from oodbench.cache import CacheRoot
    from oodbench.method import MethodContext, Modification

    backbone = tiny_backbone(TINY_CLIP if "clip" in cls.backbone_kinds else TINY_CLASSIFIER)
    benchmark = tiny_benchmark()
    pristine = snapshot(backbone)
    with tempfile.TemporaryDirectory(prefix="oodbench-conformance-") as tmp:
        ctx = MethodContext(backbone, benchmark, CacheRoot(f"{tmp}/a"), seed=0, quiet=True)
        options = conformance_options(cls)
        method = cls(**options)
        method.check(ctx)
        mod = method.prepare(ctx)
        assert isinstance(mod, Modification), f"prepare must return a Modification, got {type(mod).__name__}"
        assert_unchanged(pristine, backbone, "prepare (the model must be left pristine)")
        assert isinstance(mod.key, str) and mod.key, "Modification.key must be a non-empty string"
        assert mod.method == method.name, f"Modification.method {mod.method!r} is not the method's name {method.name!r}"
        assert {"name", "hash"} <= set(mod.record), "Modification.record needs 'name' and 'hash'"
        json.dumps(mod.record)
        json.dumps(method.describe())

        assert mod.apply(backbone) is mod
        mod.restore()
        assert_unchanged(pristine, backbone, "apply then restore")
        mod.restore()
        assert_unchanged(pristine, backbone, "a second restore")
        with mod.apply(backbone):
            pass
        assert_unchanged(pristine, backbone, "apply then leaving the with block")

        again = cls(**options).prepare(ctx)
        assert again.key == mod.key, f"a second prepare gave key {again.key!r}, the first {mod.key!r}"
        fresh_ctx = MethodContext(backbone, benchmark, CacheRoot(f"{tmp}/b"), seed=0, quiet=True)
        fresh = cls(**options).prepare(fresh_ctx)
        assert fresh.key == mod.key, f"a prepare on an empty cache gave key {fresh.key!r}, the first {mod.key!r}"
        assert_unchanged(pristine, backbone, "the later prepares")
