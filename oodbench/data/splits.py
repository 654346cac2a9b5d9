"""Split roles and a benchmark resolved on a data root: what :mod:`oodbench.data.resolve` builds from a
:class:`~oodbench.benchmark.BenchmarkSpec` (re-exported by :mod:`oodbench.benchmark`, the benchmark contract).

This module imports nothing of the project, so that the data layer builds resolved benchmarks without importing
the contract that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.data.sources import ImageSource


class Role(str, Enum):
    """What a split is used for (the value is the string stored in results and cache metadata)."""

    ID_TEST = "id_test"
    ID_VAL = "id_val"
    ID_FIT = "id_fit"
    OOD = "ood"
    OOD_VAL = "ood_val"
    CSID = "csid"

    def __str__(self) -> str:
        return self.value

    @property
    def is_id(self) -> bool:
        return self in (Role.ID_TEST, Role.ID_VAL, Role.ID_FIT, Role.CSID)


class Group(str, Enum):
    """``id`` for ID splits; OOD splits are ``near`` or ``far``."""

    ID = "id"
    NEAR = "near"
    FAR = "far"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Split:
    """One resolved split: its role, name, group and images."""

    role: Role
    name: str
    group: str
    source: "ImageSource"


@dataclass
class ResolvedBenchmark:
    """Image sources of every split of one benchmark on one data root.

    ``id_test``, ``id_val``, ``id_fit`` are sources (None when absent); ``ood``, ``ood_val`` and ``csid`` map split
    names to sources. :meth:`splits` is the one place that pairs each with its role and group.
    """

    spec: "BenchmarkSpec"  # oodbench.benchmark.BenchmarkSpec (which imports this module)
    id_test: "ImageSource"
    id_val: "ImageSource | None"
    ood: dict[str, "ImageSource"]
    id_fit: "ImageSource | None" = None
    ood_val: dict[str, "ImageSource"] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # split -> unreadable files left out
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> {"expected", "found", ...}
    csid: dict[str, "ImageSource"] = field(default_factory=dict)
    list_digests: dict[str, str] = field(default_factory=dict)  # split -> SHA-256 of its file list

    def splits(self, *roles: Role | str) -> list[Split]:
        """Resolved splits with these roles (all when none given), in :meth:`BenchmarkSpec.split_specs` order."""
        wanted = {Role(r) for r in roles} if roles else set(Role)
        groups = {s.name: s.group for _, s in self.spec.split_specs()}
        out: list[Split] = []

        def add(role: Role, name: str, source) -> None:
            if source is not None and role in wanted:
                out.append(Split(role, name, groups.get(name, Group.ID.value if role.is_id else Group.FAR.value),
                                 source))

        spec = self.spec
        add(Role.ID_TEST, spec.id_test.name, self.id_test)
        add(Role.ID_VAL, spec.id_val.name if spec.id_val else "ID val", self.id_val)
        add(Role.ID_FIT, spec.id_fit.name if spec.id_fit else "ID fit", self.id_fit)
        for name, src in self.ood.items():
            add(Role.OOD, name, src)
        for name, src in self.ood_val.items():
            add(Role.OOD_VAL, name, src)
        for name, src in self.csid.items():
            add(Role.CSID, name, src)
        return out

    def __iter__(self) -> Iterator[Split]:
        return iter(self.splits())

    @property
    def groups(self) -> dict[str, str]:
        """OOD test split name -> group."""
        return {s.name: s.group for s in self.splits(Role.OOD)}

    def fit_split(self) -> Split | None:
        """The split postprocessors fit on: ID fit, else ID val (None when the benchmark has neither)."""
        for role in (Role.ID_FIT, Role.ID_VAL):
            found = self.splits(role)
            if found:
                return found[0]
        return None
