"""Benchmark specs: which splits a benchmark has, where they live under a data root, what to expect.

A :class:`BenchmarkSpec` is data. ``resolve(data_root)`` turns it into :class:`ResolvedBenchmark` - one
:class:`~oodbench.data.sources.ImageSource` per split - checking counts and failing with one actionable line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oodbench.data.sources import ImageSource

@dataclass(frozen=True)
class SplitSpec:
    """One split of a benchmark.

    Attributes:
        name: display name (``"iNaturalist"``, ``"ImageNet-1K test"``).
        path: folder under the data root (``"OOD_iNaturalist/test"``).
        format: ``"imagefolder"`` (class sub-folders, sorted), ``"imglist"`` (OpenOOD ``path label`` lines) or
            ``"jsonlist"`` (SeTAR ``{folder: [files]}`` JSON).
        list_file: for ``imglist`` / ``jsonlist``: the list, relative to the data root (or a file shipped with
            oodbench, see :mod:`oodbench.datasets.lists`).
        expected: number of images the split must have (``None``: not checked).
        group: ``"id"``, ``"near"`` or ``"far"``.
        source: where the images come from (shown by ``oodbench data --help``).
        classes: explicit class-folder order for ``imagefolder`` / ``jsonlist`` ID splits (label ``i`` = folder
            ``classes[i]``, e.g. Pascal-VOC in the GL-MCM order); None = sorted folder names (ImageFolder).
    """

    name: str
    path: str
    format: str = "imagefolder"
    list_file: str | None = None
    expected: int | None = None
    group: str = "far"
    source: str = ""
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark: ID splits, OOD splits (grouped far / near), class names, prompt, per-backbone settings.

    ``id_fit`` is the ID split postprocessors fit on (ReAct threshold, DICE mean, KNN bank, NegLabel has none);
    when None the ID val split is used. ``ood_val`` are OOD splits for APS only (never test sets).
    ``hparams`` maps a backbone family key (``"clip-b16"``, ``"clip-l14"``, ``"swinv2-b"``, ``"resnet50"``,
    ``"default"``) to SeTAR search settings (``lam``, ``topk``, ``batch_size``, ...).
    """

    name: str
    description: str
    id_test: SplitSpec
    id_val: SplitSpec | None
    ood: tuple[SplitSpec, ...]
    class_names: tuple[str, ...]
    prompt: str = "a photo of a {}"
    id_fit: SplitSpec | None = None
    ood_val: tuple[SplitSpec, ...] = ()
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def needs_data_root(self) -> bool:
        """False when every split is built in memory (``format == "array"``), e.g. the embedded digits benchmark."""
        splits = [self.id_test, self.id_val, self.id_fit, *self.ood, *self.ood_val]
        return any(s is not None and s.format != "array" for s in splits)

    def resolve(self, data_root=None, on_bad: str = "skip") -> "ResolvedBenchmark":
        """Image sources of every split under ``data_root`` (see :func:`oodbench.datasets.resolve.resolve_files`).

        Specs whose images are not files (``format == "array"``) override this method.
        """
        from oodbench.datasets.resolve import resolve_files

        return resolve_files(self, data_root, on_bad=on_bad)


@dataclass
class ResolvedBenchmark:
    """Image sources of every split of one benchmark on one data root."""

    spec: BenchmarkSpec
    id_test: ImageSource
    id_val: ImageSource | None
    ood: dict[str, ImageSource]
    id_fit: ImageSource | None = None
    ood_val: dict[str, ImageSource] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # split -> unreadable files left out
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> {"expected", "found", "used"}

    @property
    def groups(self) -> dict[str, str]:
        return {s.name: s.group for s in self.spec.ood}

    @property
    def fit_source(self) -> ImageSource | None:
        return self.id_fit if self.id_fit is not None else self.id_val
