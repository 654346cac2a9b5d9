"""One registry idiom for every pluggable kind of oodbench.

Kinds: ``backbones``, ``modifiers``, ``postprocessors``, ``benchmarks``, ``methods``, ``papers``.

Built-ins register with a decorator::

    from oodbench.registry import register

    @register("postprocessors", "mcm", aliases=("MCM",))
    class MCM(Postprocessor): ...

Third-party code registers the same way from a file passed with ``--plugin path.py`` or from an installed
distribution that declares an entry point in the group ``oodbench.<kind>``::

    [project.entry-points."oodbench.postprocessors"]
    myscore = "mypkg.scores:MyScore"

Entry points are loaded lazily: only when that name is requested (or when everything is listed), so a
broken plugin cannot break ``oodbench --help``. A name that is already taken is an error, never a silent
overwrite. This module is the ground floor of the project and imports nothing from it.

The built-ins are known before their modules are imported: :mod:`oodbench.manifest` lists each one with
:func:`register_lazy` (name, ``"module:attribute"``, summary, aliases), so listing names and summaries
(``oodbench list``, ``--help``) imports no model library; the module is imported when the object is first
requested, and its ``@register`` decorator then fills in the entry. A test checks that the manifest says
exactly what importing the modules registers.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Callable, Iterable

KINDS = ("backbones", "modifiers", "postprocessors", "benchmarks", "methods", "papers")

# The module that lists the built-ins with `register_lazy`, imported on the first lookup so that
# `import oodbench.registry` stays free of heavy dependencies.
MANIFEST = "oodbench.manifest"


class RegistryError(KeyError):
    """Unknown name, duplicate name or unknown kind. ``str()`` gives the one-line message."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class Entry:
    """One registered object and where it came from.

    ``obj`` is None until a lazily registered entry (``target`` = ``"module:attribute"``, or an entry point) is
    loaded; ``summary`` is then the one given at registration, afterwards the first line of the docstring.
    """

    name: str
    obj: Any = None
    source: str = "builtin"  # "builtin", "plugin:<file>" or "entry-point:<distribution>"
    aliases: tuple[str, ...] = ()
    _entry_point: EntryPoint | None = field(default=None, repr=False)
    target: str | None = None
    lazy_summary: str = field(default="", repr=False)

    @property
    def loaded(self) -> bool:
        return self.obj is not None

    def load(self) -> Any:
        if self.obj is None and self._entry_point is not None:
            self.obj = self._entry_point.load()
        elif self.obj is None and self.target is not None:
            module, _, attr = self.target.partition(":")
            obj = importlib.import_module(module)  # its @register fills self.obj
            if self.obj is None:
                for part in attr.split("."):
                    obj = getattr(obj, part)
                self.obj = obj
                if isinstance(obj, type):
                    obj.registry_name = self.name
        return self.obj

    @property
    def summary(self) -> str:
        if self.obj is None:
            return self.lazy_summary
        doc = getattr(self.obj, "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Name -> object table of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._builtins_loaded = False
        self._entry_points_scanned = False

    # ----------------------------------------------------------------------------------------- add
    def add(self, name: str, obj: Any, *, aliases: Iterable[str] = (), source: str = "builtin") -> Any:
        key = _norm(name)
        aliases = tuple(aliases)
        lazy = self._entries.get(key)
        if lazy is not None and lazy.obj is None and lazy.target == _target_of(obj):
            # the module of a lazily registered entry is being imported: fill the entry in
            lazy.obj = obj
            self._add_aliases(key, aliases)
        else:
            self._check_free(key, aliases)
            self._entries[key] = Entry(key, obj, source, aliases)
            for a in aliases:
                self._aliases[_norm(a)] = key
        if isinstance(obj, type):
            obj.registry_name = key  # the canonical name, recorded in every result
        return obj

    def add_lazy(self, name: str, target: str, *, summary: str = "", aliases: Iterable[str] = (),
                 source: str = "builtin") -> None:
        """Register ``target`` (``"package.module:attribute"``) under ``name`` without importing it."""
        key = _norm(name)
        aliases = tuple(aliases)
        if ":" not in target:
            raise RegistryError(f"{self.kind}: lazy target of '{name}' must read 'module:attribute', got '{target}'")
        existing = self._entries.get(key)
        if existing is not None and existing.target == target or (
                existing is not None and _target_of(existing.obj) == target):
            existing.target, existing.lazy_summary = target, summary
            self._add_aliases(key, aliases)  # the module was imported before the manifest
            return
        self._check_free(key, aliases)
        self._entries[key] = Entry(key, None, source, aliases, target=target, lazy_summary=summary)
        for a in aliases:
            self._aliases[_norm(a)] = key

    def _check_free(self, key: str, aliases: tuple[str, ...]) -> None:
        for n in (key, *map(_norm, aliases)):
            if n in self._entries or n in self._aliases:
                owner = self._entries.get(n) or self._entries[self._aliases[n]]
                raise RegistryError(
                    f"{self.kind}: name '{n}' is already registered by {owner.source} "
                    f"({_qualname(owner.obj) if owner.obj is not None else owner.target}); choose another name"
                )

    def _add_aliases(self, key: str, aliases: tuple[str, ...]) -> None:
        entry = self._entries[key]
        for a in aliases:
            n = _norm(a)
            if self._aliases.get(n) == key:
                continue
            if n in self._entries or n in self._aliases:
                self._check_free(n, ())
            self._aliases[n] = key
            if a not in entry.aliases:
                entry.aliases = (*entry.aliases, a)

    def register(self, name: str | None = None, *, aliases: Iterable[str] = ()) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            return self.add(name or obj.__name__, obj, aliases=aliases, source=_current_source())

        return deco

    # -------------------------------------------------------------------------------------- lookup
    def get(self, name: str) -> Any:
        return self._entries[self.canonical(name)].load()

    def canonical(self, name: str) -> str:
        """The registered name ``name`` stands for (an alias resolved, case and spaces normalised), without
        importing the object; unknown names raise :class:`RegistryError` with suggestions and the known names."""
        self._ensure_loaded(entry_points_too=False)
        key = self._resolve(name)
        if key is None:
            self._ensure_loaded(entry_points_too=True)
            key = self._resolve(name)
        if key is None:
            raise self._unknown(name)
        return key

    def _unknown(self, name: str) -> RegistryError:
        known = self.names()
        close = difflib.get_close_matches(_norm(name), known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return RegistryError(f"unknown {_singular(self.kind)} '{name}'{hint}; known: {', '.join(known) or 'none'}")

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded(entry_points_too=True)
        return self._resolve(name) is not None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        self._ensure_loaded(entry_points_too=True)
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, _norm(pattern)))

    def entries(self, pattern: str = "*", load: bool = False) -> list[Entry]:
        """The entries matching ``pattern``. Entry points are loaded (a broken one is listed with the error);
        lazily registered built-ins only with ``load=True``: their summary is known without importing them."""
        out = []
        for n in self.names(pattern):
            entry = self._entries[n]
            if load or entry._entry_point is not None:
                try:
                    entry.load()
                except Exception as exc:  # a broken plugin is listed, not fatal
                    if "failed to load" not in entry.source:
                        entry.source += f" (failed to load: {exc})"
            out.append(entry)
        return out

    def _resolve(self, name: str) -> str | None:
        key = _norm(name)
        if key in self._entries:
            return key
        return self._aliases.get(key)

    # ------------------------------------------------------------------------------------- loading
    def _ensure_loaded(self, *, entry_points_too: bool) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            importlib.import_module(MANIFEST)
        if entry_points_too and not self._entry_points_scanned:
            self._entry_points_scanned = True
            for ep in entry_points(group=f"oodbench.{self.kind}"):
                dist = getattr(ep.dist, "name", "?") if ep.dist is not None else "?"
                key = _norm(ep.name)
                if key in self._entries or key in self._aliases:
                    owner = self._entries.get(key) or self._entries[self._aliases[key]]
                    raise RegistryError(
                        f"{self.kind}: entry point '{ep.name}' of distribution {dist} collides with "
                        f"{owner.source} ({_qualname(owner.obj) if owner.obj is not None else owner.target}); "
                        "rename one of them"
                    )
                self._entries[key] = Entry(key, None, f"entry-point:{dist}", (), ep)


REGISTRIES: dict[str, Registry] = {k: Registry(k) for k in KINDS}


def registry(kind: str) -> Registry:
    """The registry of one kind (``backbones``, ``modifiers``, ``postprocessors``, ``benchmarks``, ``methods``,
    ``papers``)."""
    try:
        return REGISTRIES[_kind(kind)]
    except KeyError:
        raise RegistryError(f"unknown registry kind '{kind}'; known: {', '.join(KINDS)}") from None


def register(kind: str, name: str | None = None, *, aliases: Iterable[str] = ()) -> Callable[[Any], Any]:
    """Class/function decorator: ``@register("postprocessors", "mcm")``."""
    return registry(kind).register(name, aliases=aliases)


def register_lazy(kind: str, name: str, target: str, *, summary: str = "", aliases: Iterable[str] = ()) -> None:
    """Register ``target`` (``"package.module:attribute"``) as ``name`` of ``kind`` without importing it.

    ``oodbench list`` shows ``summary``; the module is imported when ``name`` is first requested. Used by
    :mod:`oodbench.manifest` for the built-ins.
    """
    registry(kind).add_lazy(name, target, summary=summary, aliases=aliases)


def get(kind: str, name: str) -> Any:
    """Look up ``name`` in ``kind``; unknown names raise :class:`RegistryError` listing the known ones."""
    return registry(kind).get(name)


def canonical(kind: str, name: str) -> str:
    """The registered name of ``kind`` that ``name`` (or an alias of it) stands for; nothing is imported."""
    return registry(kind).canonical(name)


def names(kind: str, pattern: str = "*") -> list[str]:
    return registry(kind).names(pattern)


_loading_plugin: list[str] = []


def load_plugin(path: str | Path) -> None:
    """Import a Python file so that its ``@register`` decorators run (the CLI's ``--plugin``)."""
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"plugin file not found: {path}")
    mod_name = f"oodbench_plugin_{abs(hash(str(path.resolve())))}"
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"cannot import plugin file {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    _loading_plugin.append(f"plugin:{path.name}")
    try:
        spec.loader.exec_module(module)
    except RegistryError:
        del sys.modules[mod_name]
        raise
    except Exception as exc:
        del sys.modules[mod_name]
        raise RegistryError(f"plugin {path} failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        _loading_plugin.pop()


def _current_source() -> str:
    return _loading_plugin[-1] if _loading_plugin else "builtin"


def _norm(name: str) -> str:
    return name.strip().lower()


def _kind(kind: str) -> str:
    k = kind.strip().lower()
    return k if k.endswith("s") else k + "s"


def _singular(kind: str) -> str:
    return kind[:-1]


def _target_of(obj: Any) -> str | None:
    """``"module:qualname"`` of a class or function (what a lazy registration names), else None."""
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}:{qual}" if module and qual else None


def _qualname(obj: Any) -> str:
    if obj is None:
        return "not loaded"
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
