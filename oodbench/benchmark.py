"""The benchmark contract: split roles, split and benchmark specs, and a benchmark resolved on a data root.

Stated once here and used by extraction, evaluation, the SeTAR search and fine-tuning alike. Plugin
benchmarks (``oodbench/datasets/``) only declare :class:`BenchmarkSpec` objects; resolving them on a data root
(:mod:`oodbench.data.resolve`) is engine work.

Roles (:class:`Role`):

=========  ==========================================================================================
``id_test``  ID test images (scored; ID accuracy)
``id_val``   ID validation images: what the SeTAR search and the fine-tuning methods read, and APS
``id_fit``   ID images postprocessors fit on (ReAct threshold, DICE mean, KNN bank); the ID val split
             stands in when a benchmark has none
``ood``      OOD test sets, each in a :class:`Group` (``near`` or ``far``)
``ood_val``  OOD images for APS only, never a test set
``csid``     covariate-shifted ID test sets (full-spectrum evaluation: ImageNet-V2/-R/-Sketch/-A): ID
             classes under another image distribution, scored *as ID* beside the ID test set
=========  ==========================================================================================

A benchmark with ``csid`` splits is evaluated twice over the same scores, as OpenOOD v1.5 does: the standard
metrics (ID test against each OOD set) and the full-spectrum ones (ID test together with every csID set against
each OOD set), plus the classification accuracy of each csID set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the split roles and a resolved benchmark live on the data floor (the resolver builds them); re-exported here
from oodbench.data.splits import Group, ResolvedBenchmark, Role, Split  # noqa: F401


#: Names no OOD or csID set may take (compared case-insensitively): the row every stored run adds beside its sets
#: (``average``), the value a table may read instead of a set (``id_accuracy``) and the ID splits' own names.
RESERVED_SET_NAMES = ("average", "id_accuracy", "ID test", "ID val", "ID fit")
#: Longest OOD/csID set name (characters).
SET_NAME_MAX = 64
_SET_NAME_PUNCTUATION = " _.+-(),[]"


def set_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name an OOD or csID set, or None when it can.

    The one rule every command applies (``run --ood/--near-ood/--csid``, ``metrics --ood``, ``runs import --ood``,
    benchmark specs): 1 to :data:`SET_NAME_MAX` characters, starting with a letter or digit, then letters, digits,
    spaces and ``_ . + - ( ) , [ ]`` — so ``digits 6-9`` and ``digits 0-5 (inverted)`` pass, while a path (``a/b``,
    ``../x``, ``C:x``), markup (``<b>``), quotes, control characters and the :data:`RESERVED_SET_NAMES` do not.
    """
    if not isinstance(name, str) or not name.strip():
        return "a set name must not be empty"
    if name != name.strip():
        return "a set name must not start or end with a space"
    if len(name) > SET_NAME_MAX:
        return f"a set name has at most {SET_NAME_MAX} characters (this one has {len(name)})"
    if name.casefold() in {r.casefold() for r in RESERVED_SET_NAMES}:
        return f"'{name}' is reserved (every run uses the names {', '.join(RESERVED_SET_NAMES)} itself)"
    bad = sorted({c for c in name if not (c.isalnum() or c in _SET_NAME_PUNCTUATION)})
    if bad:
        return (f"a set name uses letters, digits, spaces and {' '.join(_SET_NAME_PUNCTUATION.strip())} only, "
                f"not {' '.join(repr(c) for c in bad)}")
    if not name[0].isalnum():
        return "a set name starts with a letter or digit"
    return None


def check_set_name(name: str, flag: str = "set name") -> str:
    """``name`` when :func:`set_name_problem` finds nothing, else a one-line
    :class:`~oodbench.errors.UserError` naming ``flag`` (the option the user typed, e.g. ``--ood``)."""
    from oodbench.errors import UserError

    problem = set_name_problem(name)
    if problem is not None:
        raise UserError(f"{flag} {name!r}: {problem}")
    return name


#: Split formats: ImageFolder trees, OpenOOD imglists, SeTAR JSON lists, in-memory arrays.
FORMATS = ("imagefolder", "imglist", "jsonlist", "array")
#: Prefix of a ``list_file`` that ships with the benchmark's package (``BenchmarkSpec.lists_dir``).
PKG_PREFIX = "pkg:"


@dataclass(frozen=True)
class SplitSpec:
    """One split of a benchmark.

    Attributes:
        name: display name (``"iNaturalist"``, ``"ImageNet-1K test"``).
        path: folder under the data root (``"OOD_iNaturalist/test"``).
        format: one of :data:`FORMATS`.
        list_file: for ``imglist`` / ``jsonlist``: the list, relative to the data root, or ``pkg:<file>`` for a
            list shipped in the benchmark's ``lists_dir``.
        expected: number of images the split must have (None: not checked).
        group: :class:`Group` (``"id"``, ``"near"`` or ``"far"``).
        source: where the images come from (shown by ``oodbench data layout``).
        classes: explicit class-folder order of an ID split (label ``i`` = folder ``classes[i]``); None = sorted
            folder names (ImageFolder).
        class_subset: the split's class folders are a subset of ``classes`` (ImageNet-R and ImageNet-A hold 200 of
            the 1,000 ImageNet wnids): labels are still indices into ``classes``; a folder not in ``classes`` is
            an error.
        list_sha256: SHA-256 of the ``list_file`` the published numbers were computed on; a list with another
            digest is refused (None: not pinned; the digest of the list used is still recorded with every run).
    """

    name: str
    path: str
    format: str = "imagefolder"
    list_file: str | None = None
    expected: int | None = None
    group: str = "far"
    source: str = ""
    classes: tuple[str, ...] | None = None
    class_subset: bool = False
    list_sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "group", Group(self.group).value)
        if self.class_subset and not self.classes:
            raise ValueError(f"split {self.name}: class_subset needs the full class-folder order in classes")


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark: its splits by role, class names, prompt, and what it runs by default.

    Attributes:
        family: the ID-set family the SeTAR hyperparameter table is keyed by (``"imagenet"``, ``"voc"``,
            ``"digits"``; ``""`` = no published setting).
        default_backbone: the backbone ``oodbench run`` uses when ``--backbone`` is not given (None: required).
        default_postprocessors: scores run when ``--post`` is not given (None: each score's own
            ``default_for`` declaration for the backbone kind).
        lists_dir: folder of the file lists that ship with the benchmark (``pkg:`` list files).
        lists_source: where the shipped lists come from (shown by ``oodbench data layout``).
        identity: extra data identifying the benchmark in results (ad-hoc benchmarks: folders, class names).
        csid: covariate-shifted ID test sets, scored as ID (full-spectrum evaluation); their ``group`` is ``id``.
        note: one line that ``oodbench run`` prints under its tables: what results on this benchmark can and cannot
            show, and where to read more (``""``: nothing is printed).
        classify_labels: split name -> a label list for the official classification protocol of SeTAR's Table 7
            (:mod:`oodbench.classify`: gzip TSV ``key<TAB>name``); a CLIP run on the benchmark records that accuracy
            for each such split in ``extra["classify"]``.
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
    family: str = ""
    default_backbone: str | None = None
    default_postprocessors: tuple[str, ...] | None = None
    lists_dir: str | None = None
    lists_source: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    csid: tuple[SplitSpec, ...] = ()
    note: str = ""
    classify_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in (*self.ood, *self.ood_val, *self.csid):
            problem = set_name_problem(split.name)
            if problem is not None:
                raise ValueError(f"benchmark {self.name}: split {split.name!r}: {problem}")

    def split_specs(self) -> list[tuple[Role, SplitSpec]]:
        """Every split with its role, in the fixed order ID test, ID val, ID fit, OOD, OOD val, csID."""
        out: list[tuple[Role, SplitSpec]] = [(Role.ID_TEST, self.id_test)]
        out += [(r, s) for r, s in ((Role.ID_VAL, self.id_val), (Role.ID_FIT, self.id_fit)) if s is not None]
        out += [(Role.OOD, s) for s in self.ood] + [(Role.OOD_VAL, s) for s in self.ood_val]
        out += [(Role.CSID, s) for s in self.csid]
        return out

    @property
    def needs_data_root(self) -> bool:
        """False when every split is built in memory (``format == "array"``), e.g. the embedded digits benchmark."""
        return any(s.format != "array" for _, s in self.split_specs())

    def list_path(self, list_file: str, data_root: str | Path | None) -> Path:
        """Where a split's ``list_file`` is: in ``lists_dir`` for ``pkg:`` names, else under the data root."""
        if list_file.startswith(PKG_PREFIX):
            if self.lists_dir is None:
                raise ValueError(f"benchmark {self.name}: '{list_file}' needs lists_dir")
            return Path(self.lists_dir) / list_file[len(PKG_PREFIX):]
        p = Path(list_file)
        return p if p.is_absolute() or data_root is None else Path(data_root) / p

    def resolve(self, data_root: str | Path | None = None, on_bad: str = "skip") -> "ResolvedBenchmark":
        """Image sources of every split (file-based specs; in-memory specs override this)."""
        from oodbench.data.resolve import resolve_files

        return resolve_files(self, data_root, on_bad=on_bad)

    resolve.resolves_files = True  # type: ignore[attr-defined]  # how the resolver tells an override apart


def get_benchmark(name: str) -> BenchmarkSpec:
    """The spec registered as ``name`` (factories are called); unknown names list the known ones."""
    from oodbench.registry import get

    obj = get("benchmarks", name)
    spec = obj if isinstance(obj, BenchmarkSpec) else obj()
    if not isinstance(spec, BenchmarkSpec):
        raise TypeError(f"benchmark '{name}' is registered as {obj!r}, which gives no BenchmarkSpec")
    return spec
