"""An ad-hoc benchmark from folders given on the command line (``--id-test DIR --ood NAME=DIR ...``).

ID folders are ImageFolder trees (one sub-folder per class). ``--classes`` gives the class names in label order
(a text file, or a registered benchmark's name: ``imagenet1k``, ``voc``); label ``i`` is the class named on line
``i``. Which folder holds class ``i`` is decided by exactly one rule, never guessed:

* **by name** (default): every folder is named like a class and every class has a folder;
* **mapping file** (``--class-map FILE``): lines ``folder<TAB>class name``; every folder and every class appears
  exactly once (with no ``--classes`` the map's line order is the label order);
* **by position** (``--classes-by-position``, explicit only): the sorted folders are named by position, as
  torchvision's ImageFolder numbers them (the ImageNet wnid folders ``n01440764 ...`` with ``--classes
  imagenet1k``).

Duplicated names, names without a folder and folders without a name are one-line errors naming them; fewer
than two classes is an error (class-comparing scores such as MCM are constant with one class, and ID accuracy is
trivially 100%). The chosen mapping, the folders and a digest of each split's file list go into the spec's
``identity``, so every result of the benchmark records which data it measured.

OOD folders may hold images directly or in sub-folders (all read recursively, label -1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from oodbench.benchmark import BenchmarkSpec, SplitSpec, check_set_name
from oodbench.data.classnames import resolve_classnames
from oodbench.data.readers import class_folders, read_imagefolder
from oodbench.errors import DataError, UserError

DEFAULT_PROMPT = "a photo of a {}"  # the official SeTAR / MCM prompt
BY_NAME, BY_MAP, BY_POSITION = "folder names", "class map", "sorted-folder position"
_HOW = ("name the folders like the classes, give --class-map FILE (lines 'folder<TAB>class name'), or pass "
        "--classes-by-position to name the {n} sorted folders by position (e.g. ImageNet wnid folders with "
        "--classes imagenet1k)")


def _few(items, n: int = 5) -> str:
    items = list(items)
    return ", ".join(f"'{x}'" for x in items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def read_class_map(path: str | Path) -> list[tuple[str, str]]:
    """``[(folder, class name), ...]`` from a ``folder<TAB>class name`` file (blank and ``#`` lines skipped).

    Raises:
        UserError: unreadable file, a line without a tab, or a folder listed twice.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--class-map {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    pairs: list[tuple[str, str]] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        folder, tab, name = line.partition("\t")
        if not tab or not folder.strip() or not name.strip():
            raise UserError(f"--class-map {path}:{lineno}: expected 'folder<TAB>class name', got '{line[:80]}'")
        pairs.append((folder.strip(), name.strip()))
    if not pairs:
        raise UserError(f"--class-map {path}: no 'folder<TAB>class name' line")
    twice = [f for f, c in Counter(f for f, _ in pairs).items() if c > 1]
    if twice:
        raise UserError(f"--class-map {path}: folder(s) {_few(twice)} listed more than once")
    return pairs


def class_order(folder: Path, names: tuple[str, ...], *, class_map: list[tuple[str, str]] | None = None,
                by_position: bool = False, flag: str = "--id-test") -> tuple[tuple[str, ...], str]:
    """``(class folders in label order, rule used)`` for the tree ``folder`` and the class ``names``.

    Raises:
        DataError: no class folders, or the folders and names do not match under the chosen rule.
        UserError: conflicting options, duplicated names.
    """
    folders = class_folders(folder)
    if not folders:
        raise DataError(f"{flag} {folder}: no class sub-folders (an ID split needs one folder per class)")
    if class_map is not None and by_position:
        raise UserError("--class-map and --classes-by-position exclude each other; use one rule")
    if by_position:
        if len(folders) != len(names):
            raise DataError(f"{flag} {folder}: {len(folders)} class folders but {len(names)} class names; "
                            "--classes-by-position needs one name per folder")
        return tuple(folders), BY_POSITION
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup and class_map is not None:
        raise UserError(f"--classes: class name(s) {_few(dup)} given more than once; a class map needs unique names")
    if class_map is not None:
        mapped = dict(class_map)
        by_class: dict[str, list[str]] = {}
        for f, n in class_map:
            by_class.setdefault(n, []).append(f)
        shared = {n: fs for n, fs in by_class.items() if len(fs) > 1}
        if shared:
            n, fs = next(iter(shared.items()))
            raise DataError(f"--class-map: folders {_few(fs)} are all mapped to class '{n}'; one folder per class")
        absent = [f for f in mapped if f not in folders]
        if absent:
            raise DataError(f"--class-map: folder(s) {_few(absent)} do not exist under {folder}")
        unmapped = [f for f in folders if f not in mapped]
        if unmapped:
            raise DataError(f"{flag} {folder}: folder(s) {_few(unmapped)} have no class name in --class-map")
        unknown = {f: n for f, n in mapped.items() if n not in names}
        if unknown:
            raise DataError(f"--class-map: folder(s) {_few(unknown)} are mapped to class name(s) "
                            f"{_few(unknown.values())} that are not in --classes")
        lacking = [n for n in names if n not in by_class]
        if lacking:
            raise DataError(f"--class-map: class name(s) {_few(lacking)} of --classes have no folder")
        return tuple(by_class[n][0] for n in names), BY_MAP
    lacking = [n for n in dict.fromkeys(names) if n not in folders]
    extra = [f for f in folders if f not in names]
    if dup or lacking or extra:
        parts = [f"class name(s) {_few(dup)} given more than once"] if dup else []
        if lacking:
            parts.append(f"class name(s) {_few(lacking)} have no folder")
        if extra:
            parts.append(f"folder(s) {_few(extra)} have no class name")
        raise DataError(f"{flag} {folder}: {'; '.join(parts)} — {_HOW.format(n=len(folders))}")
    return tuple(names), BY_NAME


def adhoc_benchmark(id_test: str | Path, classes: str | Path | None, ood: dict[str, str | Path], *,
                    near_ood: dict[str, str | Path] | None = None, id_val: str | Path | None = None,
                    prompt: str | None = None, name: str = "adhoc", require_ood: bool = True,
                    class_map: str | Path | None = None, classes_by_position: bool = False,
                    csid: dict[str, str | Path] | None = None) -> BenchmarkSpec:
    """Build a file-based spec from folders (absolute paths; no data root needed).

    Args:
        id_test: ImageFolder tree of the ID test images.
        classes: class-names file (one per line, label order) or a registered benchmark name (``imagenet1k``,
            ``voc``); may be None when ``class_map`` is given (its line order is then the label order).
        ood: far-OOD sets, ``{name: folder}``.
        near_ood: near-OOD sets, ``{name: folder}``.
        id_val: ImageFolder tree of the ID validation images (SeTAR search split; optional); it must hold the
            same class folders as ``id_test``.
        prompt: text template with one ``{}`` (default ``"a photo of a {}"``).
        name: benchmark name recorded in results.
        require_ood: at least one OOD folder (False for commands that read only the ID val split).
        class_map: ``folder<TAB>class name`` file (see the module docstring).
        classes_by_position: name the sorted folders by position (explicit opt-in).
        csid: covariate-shifted ID sets, ``{name: folder}``: ImageFolder trees holding some or all of the ID
            class folders (labelled by the ID class order), scored as ID for the full-spectrum metrics.

    Raises:
        UserError / DataError: one line naming the folders or names at fault.
    """
    ood, near_ood = ood or {}, near_ood or {}
    if require_ood and not ood and not near_ood:
        raise UserError("an ad-hoc benchmark needs at least one OOD folder: --ood NAME=DIR")
    prompt = DEFAULT_PROMPT if prompt is None else prompt
    if prompt.count("{}") != 1:
        raise UserError(f"--prompt must contain '{{}}' exactly once (where the class name goes), got '{prompt}'")
    for flag, named in (("--ood", ood), ("--near-ood", near_ood), ("--csid", csid or {})):
        for set_name in named:
            check_set_name(set_name, flag)
    test_dir = _folder(id_test, "--id-test")
    val_dir = _folder(id_val, "--id-val") if id_val is not None else None
    splits = [SplitSpec(n, str(_folder(d, f"--ood {n}")), group="far", source="--ood") for n, d in ood.items()]
    splits += [SplitSpec(n, str(_folder(d, f"--near-ood {n}")), group="near", source="--near-ood")
               for n, d in near_ood.items()]
    csid = csid or {}
    every = [*splits, *(SplitSpec(n, "", group="id") for n in csid)]
    dup = {s.name for s in every if [t.name for t in every].count(s.name) > 1}
    if dup or {"ID test", "ID val"} & {s.name for s in every}:
        raise UserError(f"OOD and csID set names must be unique and differ from 'ID test'/'ID val': "
                        f"{', '.join(sorted(dup))}")
    pairs = read_class_map(class_map) if class_map is not None else None
    if classes is not None:
        names, names_from = resolve_classnames(classes)
    elif pairs is not None:
        names, names_from = tuple(n for _, n in pairs), f"class map {Path(class_map).expanduser().resolve()}"
    else:
        raise UserError("ad-hoc benchmark: give the class names with --classes FILE (or --class-map FILE)")
    if len(names) < 2:
        raise UserError(f"--classes {classes if classes is not None else class_map}: {len(names)} class name; an ID "
                        "set needs at least 2 classes (with one, MCM and softmax scores are constant and ID "
                        "accuracy is trivially 100%)")
    flag = "--id-val" if val_dir is not None and val_dir == test_dir else "--id-test"  # val only (a search)
    order, rule = class_order(test_dir, names, class_map=pairs, by_position=classes_by_position, flag=flag)
    if val_dir is not None and val_dir != test_dir:
        _same_classes(val_dir, test_dir, order)
    test = SplitSpec("ID test", str(test_dir), group="id", classes=order, source="--id-test")
    val = None if val_dir is None else SplitSpec("ID val", str(val_dir), group="id", classes=order, source="--id-val")
    shifted = tuple(SplitSpec(n, str(_folder(d, f"--csid {n}")), group="id", classes=order, class_subset=True,
                              source="--csid") for n, d in csid.items())
    identity = {
        "folders": {s.name: s.path for s in (test, val, *splits, *shifted) if s is not None},
        "classes": [[f, n] for f, n in zip(order, names)],
        "class_rule": rule + (f" {Path(class_map).expanduser().resolve()}" if rule == BY_MAP else ""),
        "class_names_from": names_from,
        "file_lists": {s.name: _list_identity(s) for s in (test, val, *splits, *shifted) if s is not None},
    }
    return BenchmarkSpec(
        name=name,
        description=f"ad-hoc benchmark: ID {test_dir}",
        id_test=test,
        id_val=val,
        ood=tuple(splits),
        class_names=names,
        prompt=prompt,
        identity=identity,
        csid=shifted,
    )


def _same_classes(val_dir: Path, test_dir: Path, order: tuple[str, ...]) -> None:
    found = class_folders(val_dir)
    lacking = [f for f in order if f not in found]
    extra = [f for f in found if f not in order]
    if lacking or extra:
        what = "; ".join(p for p in (f"lacks class folder(s) {_few(lacking)}" if lacking else "",
                                     f"has folder(s) {_few(extra)} that are not classes" if extra else "") if p)
        raise DataError(f"--id-val {val_dir}: {what} — it needs the class folders of --id-test {test_dir}")


def _list_identity(split: SplitSpec) -> dict:
    """Image count and digest of the file list (relative paths and labels) of one split folder."""
    src = read_imagefolder(split.path, split.name, classes=split.classes, ood=split.group != "id",
                           class_subset=split.class_subset)
    return {"n": len(src), "list_digest": src.list_digest()}


def _folder(path: str | Path, flag: str) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise DataError(f"{flag}: {path} is not a folder")
    return p

