"""An ad-hoc benchmark from folders given on the command line (``--id-test DIR --ood NAME=DIR ...``).

ID folders are ImageFolder trees (one sub-folder per class). The class-names file gives the names in label
order and decides how folders map to labels:

* folder names equal to the class names (any order on disk): label ``i`` = the folder named like line ``i``;
* otherwise, as many folders as names: sorted folders, named by position (ImageFolder order; e.g. wnid
  folders with the ImageNet class-name list);
* anything else is an error.

OOD folders may hold images directly or in sub-folders (all read recursively, label -1).
"""

from __future__ import annotations

import logging
from pathlib import Path

from oodbench.data.readers import class_folders
from oodbench.benchmark import BenchmarkSpec, SplitSpec
from oodbench.datasets.resources import read_classnames
from oodbench.errors import DataError, UserError

log = logging.getLogger("oodbench")

DEFAULT_PROMPT = "a photo of a {}"  # the official SeTAR / MCM prompt


def class_order(folder: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """Class folders of ``folder`` in label order, matched to ``names`` by the rule of the module docstring."""
    folders = class_folders(folder)
    if not folders:
        raise DataError(f"--id-test {folder}: no class sub-folders (an ID split needs one folder per class)")
    if set(folders) == set(names) and len(set(names)) == len(names):
        return tuple(names)
    if len(folders) == len(names):
        log.info("class folders of %s do not match the class names; naming the %d sorted folders by position",
                 folder, len(folders))
        return tuple(folders)
    raise DataError(f"--id-test {folder}: {len(folders)} class folders but {len(names)} class names in --classes; "
                    f"give one name per class folder (same names, or in sorted-folder order)")


def adhoc_benchmark(id_test: str | Path, classes: str | Path, ood: dict[str, str | Path], *,
                    near_ood: dict[str, str | Path] | None = None, id_val: str | Path | None = None,
                    prompt: str | None = None, name: str = "adhoc", require_ood: bool = True) -> BenchmarkSpec:
    """Build a file-based spec from folders (absolute paths; no data root needed).

    Args:
        id_test: ImageFolder tree of the ID test images.
        classes: class-names file (one per line, label order) or a shipped list name (``imagenet1k``, ``voc``).
        ood: far-OOD sets, ``{name: folder}``.
        near_ood: near-OOD sets, ``{name: folder}``.
        id_val: ImageFolder tree of the ID validation images (SeTAR search split; optional).
        prompt: text template with one ``{}`` (default ``"a photo of a {}"``).
        name: benchmark name recorded in results.
        require_ood: at least one OOD folder (False for commands that read only the ID val split).
    """
    ood, near_ood = ood or {}, near_ood or {}
    if require_ood and not ood and not near_ood:
        raise UserError("an ad-hoc benchmark needs at least one OOD folder: --ood NAME=DIR")
    prompt = DEFAULT_PROMPT if prompt is None else prompt
    if prompt.count("{}") != 1:
        raise UserError(f"--prompt must contain '{{}}' exactly once (where the class name goes), got '{prompt}'")
    test_dir = _folder(id_test, "--id-test")
    val_dir = _folder(id_val, "--id-val") if id_val is not None else None
    splits = [SplitSpec(n, str(_folder(d, f"--ood {n}")), group="far", source="--ood") for n, d in ood.items()]
    splits += [SplitSpec(n, str(_folder(d, f"--near-ood {n}")), group="near", source="--near-ood")
               for n, d in near_ood.items()]
    names = read_classnames(classes)
    order = class_order(test_dir, names)
    val = None if val_dir is None else SplitSpec("ID val", str(val_dir), group="id", classes=order, source="--id-val")
    dup = {s.name for s in splits if [t.name for t in splits].count(s.name) > 1}
    if dup or {"ID test", "ID val"} & {s.name for s in splits}:
        raise UserError(f"OOD set names must be unique and differ from 'ID test'/'ID val': {', '.join(sorted(dup))}")
    return BenchmarkSpec(
        name=name,
        description=f"ad-hoc benchmark: ID {test_dir}",
        id_test=SplitSpec("ID test", str(test_dir), group="id", classes=order, source="--id-test"),
        id_val=val,
        ood=tuple(splits),
        class_names=names,
        prompt=prompt,
    )


def _folder(path: str | Path, flag: str) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise DataError(f"{flag}: {path} is not a folder")
    return p
