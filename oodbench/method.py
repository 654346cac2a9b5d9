"""The method contract: what a registered method hands to the evaluation.

A **method** changes the model before features are extracted: ``none`` leaves it as loaded, ``setar`` replaces
weights by low-rank approximations found by a search, fine-tuning methods train weights or prompts. Every
method is a class registered in the ``methods`` kind::

    from oodbench.method import Method, Modification
    from oodbench.registry import register

    @register("methods", "my-method")
    class MyMethod(Method):
        \"\"\"One line shown by `oodbench list methods`.\"\"\"

        display_name = "Mine"

        def prepare(self, ctx):          # search, train or load; cache under ctx.caches
            return Modification(...)     # applied before extraction, restored after

The evaluation (:mod:`oodbench.orchestration.pipeline`) only talks to this contract:

1. ``Method(**options)`` with options from :meth:`Method.options_from_args` (the CLI options the class adds
   with :meth:`Method.add_arguments`) or from Python;
2. :meth:`Method.check` before any work or write — a bad option, a missing ID val split, an unsupported
   backbone kind raise :class:`~oodbench.errors.UserError` and nothing is stored;
3. :meth:`Method.prepare` returns a :class:`Modification`: its ``key`` enters every feature-cache key, its
   ``record`` goes into every stored result, and ``apply`` / ``restore`` bracket the extraction.

The engine never imports a method: it asks the registry (``oodbench list methods``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from oodbench.errors import IncompatibleError, UserError

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.backbones.base import Backbone
    from oodbench.benchmark import ResolvedBenchmark
    from oodbench.cache import CacheRoot

#: Hash of "no modification": the pristine model's entry of every cache key.
NONE_KEY = "none"


@dataclass
class MethodContext:
    """Everything a method may use to prepare its modification.

    Attributes:
        backbone: the model, pristine (weights as loaded).
        benchmark: the resolved benchmark (``benchmark.id_val`` is the split searches and training read).
        caches: the cache root (``caches.plans``, ``caches.checkpoints`` ...).
        seed: the run's seed (random prune order, training).
        device: where the model runs.
        on_bad: ``"skip"`` or ``"fail"`` for unreadable images the method reads.
        quiet: no progress bars.
    """

    backbone: "Backbone"
    benchmark: "ResolvedBenchmark"
    caches: "CacheRoot"
    seed: int = 0
    device: str = "cpu"
    on_bad: str = "skip"
    quiet: bool = False


@dataclass
class Modification:
    """What a method produced: applied to the backbone before extraction, restored afterwards.

    Attributes:
        method: registry name of the method that produced it.
        key: identity of the modified model (plan hash, checkpoint hash, prompts hash); part of every feature-cache
            key. :data:`NONE_KEY` for the unmodified model.
        record: JSON-able description stored in every result (``name`` and ``hash`` at least).
        apply_fn: ``apply_fn(backbone)`` changes the backbone in place and returns a function that undoes it.
    """

    method: str
    key: str = NONE_KEY
    record: dict[str, Any] = field(default_factory=dict)
    apply_fn: Callable[["Backbone"], Callable[[], None]] | None = None
    _undo: Callable[[], None] | None = field(default=None, repr=False)

    def apply(self, backbone: "Backbone") -> "Modification":
        self.restore()
        if self.apply_fn is not None:
            self._undo = self.apply_fn(backbone)
        return self

    def restore(self) -> None:
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()

    def __enter__(self) -> "Modification":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


class Method:
    """Base class of registered methods. Subclasses override :meth:`prepare`, and the class attributes below.

    Attributes:
        display_name: the name tables and messages show (``"SeTAR+FT"``).
        backbone_kinds: backbone kinds the method works with (``"clip"``, ``"classifier"``).
        reads_val: :meth:`prepare` reads the benchmark's ID val split (searches, training).
        produces: what :meth:`prepare` makes: ``"nothing"``, ``"plan"``, ``"checkpoint"`` or ``"prompts"``
            (``oodbench search`` offers the methods that produce a plan).
        trains: the method trains parameters (``oodbench finetune`` offers these).
        option_names: the keyword options the constructor accepts (their defaults are presets).
        baseline: evaluated beside every other method (the vanilla model).
    """

    display_name: ClassVar[str] = ""
    backbone_kinds: ClassVar[tuple[str, ...]] = ("clip", "classifier")
    reads_val: ClassVar[bool] = False
    produces: ClassVar[str] = "nothing"
    trains: ClassVar[bool] = False
    option_names: ClassVar[tuple[str, ...]] = ()
    baseline: ClassVar[bool] = False
    registry_name: ClassVar[str] = ""

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            known = ", ".join(self.option_names) or "none"
            raise UserError(f"method {self.name}: unknown option(s) {', '.join(unknown)} (known: {known})")
        self.options = {k: v for k, v in options.items() if v is not None}

    @property
    def name(self) -> str:
        return self.registry_name or type(self).__name__

    @classmethod
    def title(cls) -> str:
        """Display name for tables (``display_name``, else the registry name)."""
        return cls.display_name or cls.registry_name

    @classmethod
    def settings_text(cls, record: dict[str, Any]) -> str:
        """The settings of a stored run of this method in readable words, from the ``plan`` field of its run record
        (the :attr:`Modification.record` plus ``method``: name and options) — what the leaderboard shows beside the
        method's name so that rows can be compared (SeTAR: ``λ 0.1, top-K 2, SeTAR-S, W_up, both towers``;
        LoRA: ``rank 16, α 16, 5 epochs, ...``). The base class lists the options the run was given
        (``name value``, sorted), or ``""``."""
        options = ((record or {}).get("method") or {}).get("options") or {}
        return ", ".join(f"{k.replace('_', ' ')} {setting_word(v)}" for k, v in sorted(options.items()))

    # -------------------------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **kwargs: Any) -> None:
        """Add the options this method takes to ``parser`` (an argument group; defaults must be None)."""

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The constructor options given on the command line (those the user did not pass are left out)."""
        return {}

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Options whose default does not depend on the backbone or benchmark (e.g. SeTAR's searcher), so that
        ``--searcher setar-s`` and no option describe the same run."""
        return {}

    @classmethod
    def canonical_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` in one canonical spelling where two spellings make the same run (e.g. LoRA's
        ``alpha_mode="official-code"`` is ``alpha=8``), so that stored runs and table specs compare equal. The base
        class returns them unchanged."""
        return dict(options)

    @classmethod
    def shown_options(cls) -> dict[str, Any]:
        """Options that printed commands (``oodbench tables --dry-run``) spell out even at their default, because the
        paper's text and the published runs disagree on them (LoRA's alpha). The base class shows none."""
        return {}

    #: Option -> the ``oodbench run`` flag that sets it, for the commands ``oodbench tables --dry-run`` prints (an
    #: option without a flag is printed as settable from the Python API only).
    run_flags: dict[str, str] = {}

    @classmethod
    def options_for_seed(cls, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """``options`` for the run of seed ``seed`` of a seeded sweep, where an option takes the run's seed (SeTAR's
        random prune order). The base class returns them unchanged."""
        return dict(options)

    @classmethod
    def plan_figure(cls, plan: dict[str, Any], stem: Path, title: str = "") -> list[Path]:
        """Draw the figure of a run's ``plan`` (the record's ``plan``, or a plan file's JSON) at ``stem`` (``.png``
        and ``.svg``) and return the written paths; the base class draws none. SeTAR draws its rank-ratio map."""
        return []

    @classmethod
    def plan_seed(cls, options: dict[str, Any], seed: int | None) -> int | None:
        """The seed a run with these options records in its plan when its result depends on it (SeTAR's random
        prune), else None: a stored run matches a table cell of seed ``seed`` only with that plan seed."""
        return None

    # ---------------------------------------------------------------------------------- contract
    def check(self, ctx: MethodContext) -> None:
        """Validate everything :meth:`prepare` will need, before any work or write.

        The base check: the backbone kind, and an ID val split when the method reads one.
        """
        if ctx.backbone.kind not in self.backbone_kinds:
            raise IncompatibleError(f"method {self.name} works with {' / '.join(self.backbone_kinds)} backbones, "
                                    f"not {ctx.backbone.name} ({ctx.backbone.kind})")
        if self.reads_val and ctx.benchmark.id_val is None:
            raise UserError(f"method {self.name} reads the ID val split, and benchmark "
                            f"'{ctx.benchmark.spec.name}' has none")

    def prepare(self, ctx: MethodContext) -> Modification:
        """Search, train or load what the method needs and return the :class:`Modification`."""
        raise NotImplementedError

    def export(self, ctx: MethodContext, modification: Modification, dest: Path) -> list[str]:
        """Write what a user takes away from a prepared modification into ``dest`` (``oodbench finetune --out``):
        logs, trained tensors, a merged model. Returns lines to show. The base class writes nothing."""
        return []

    def describe(self) -> dict[str, Any]:
        """Name and options, stored in every result of this method."""
        return {"name": self.name, "options": dict(self.options)}


def method_class(name: str) -> type[Method]:
    """The registered method class ``name`` (a RegistryError lists the known ones)."""
    from oodbench.registry import get

    cls = get("methods", name)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"method '{name}' is registered as {cls!r}, which is not a Method subclass")
    return cls


def setting_word(value: Any) -> str:
    """A setting's value in a short readable form: ``0.1``, ``W_up``, ``yes`` / ``no``, ``a, b``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(setting_word(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {setting_word(v)}" for k, v in sorted(value.items()))
    return str(value)
