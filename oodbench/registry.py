"""One registry idiom for every pluggable kind of oodbench.

Kinds: ``backbones``, ``modifiers``, ``postprocessors``, ``benchmarks``, ``methods``.

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

KINDS = ("backbones", "modifiers", "postprocessors", "benchmarks", "methods")

# The modules whose import registers the built-ins of each kind. Imported on first lookup so that
# `import oodbench.registry` stays free of heavy dependencies.
_BUILTIN_MODULES = {
    "backbones": ("oodbench.backbones",),
    "modifiers": ("oodbench.methods",),
    "postprocessors": ("oodbench.postprocessors",),
    "benchmarks": ("oodbench.datasets",),
    "methods": ("oodbench.methods",),
}


class RegistryError(KeyError):
    """Unknown name, duplicate name or unknown kind. ``str()`` gives the one-line message."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class Entry:
    """One registered object and where it came from."""

    name: str
    obj: Any = None
    source: str = "builtin"  # "builtin", "plugin:<file>" or "entry-point:<distribution>"
    aliases: tuple[str, ...] = ()
    _entry_point: EntryPoint | None = field(default=None, repr=False)

    def load(self) -> Any:
        if self.obj is None and self._entry_point is not None:
            self.obj = self._entry_point.load()
        return self.obj

    @property
    def summary(self) -> str:
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
        for n in (key, *map(_norm, aliases)):
            if n in self._entries or n in self._aliases:
                owner = self._entries.get(n) or self._entries[self._aliases[n]]
                raise RegistryError(
                    f"{self.kind}: name '{n}' is already registered by {owner.source} "
                    f"({_qualname(owner.obj)}); choose another name"
                )
        self._entries[key] = Entry(key, obj, source, aliases)
        for a in aliases:
            self._aliases[_norm(a)] = key
        if isinstance(obj, type):
            obj.registry_name = key  # the canonical name, recorded in every result
        return obj

    def register(self, name: str | None = None, *, aliases: Iterable[str] = ()) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            return self.add(name or obj.__name__, obj, aliases=aliases, source=_current_source())

        return deco

    # -------------------------------------------------------------------------------------- lookup
    def get(self, name: str) -> Any:
        self._ensure_loaded(entry_points_too=False)
        key = self._resolve(name)
        if key is None:
            self._ensure_loaded(entry_points_too=True)
            key = self._resolve(name)
        if key is None:
            known = self.names()
            close = difflib.get_close_matches(_norm(name), known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise RegistryError(f"unknown {_singular(self.kind)} '{name}'{hint}; known: {', '.join(known) or 'none'}")
        return self._entries[key].load()

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded(entry_points_too=True)
        return self._resolve(name) is not None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        self._ensure_loaded(entry_points_too=True)
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, _norm(pattern)))

    def entries(self, pattern: str = "*") -> list[Entry]:
        out = []
        for n in self.names(pattern):
            entry = self._entries[n]
            try:
                entry.load()
            except Exception as exc:  # a broken plugin is listed, not fatal
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
            for mod in _BUILTIN_MODULES.get(self.kind, ()):
                importlib.import_module(mod)
        if entry_points_too and not self._entry_points_scanned:
            self._entry_points_scanned = True
            for ep in entry_points(group=f"oodbench.{self.kind}"):
                dist = getattr(ep.dist, "name", "?") if ep.dist is not None else "?"
                key = _norm(ep.name)
                if key in self._entries or key in self._aliases:
                    owner = self._entries.get(key) or self._entries[self._aliases[key]]
                    raise RegistryError(
                        f"{self.kind}: entry point '{ep.name}' of distribution {dist} collides with "
                        f"{owner.source} ({_qualname(owner.obj)}); rename one of them"
                    )
                self._entries[key] = Entry(key, None, f"entry-point:{dist}", (), ep)


REGISTRIES: dict[str, Registry] = {k: Registry(k) for k in KINDS}


def registry(kind: str) -> Registry:
    """The registry of one kind (``backbones``, ``modifiers``, ``postprocessors``, ``benchmarks``, ``methods``)."""
    try:
        return REGISTRIES[_kind(kind)]
    except KeyError:
        raise RegistryError(f"unknown registry kind '{kind}'; known: {', '.join(KINDS)}") from None


def register(kind: str, name: str | None = None, *, aliases: Iterable[str] = ()) -> Callable[[Any], Any]:
    """Class/function decorator: ``@register("postprocessors", "mcm")``."""
    return registry(kind).register(name, aliases=aliases)


def get(kind: str, name: str) -> Any:
    """Look up ``name`` in ``kind``; unknown names raise :class:`RegistryError` listing the known ones."""
    return registry(kind).get(name)


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


def _qualname(obj: Any) -> str:
    if obj is None:
        return "not loaded"
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
