"""Readers that turn one split on disk into a :class:`~oodbench.data.sources.FileListSource`.

Three formats, all giving the same kind of source (relative paths in a fixed order, one label each):

* **ImageFolder trees** (:func:`read_imagefolder`): one sub-folder per class; labels follow the sorted folder
  names, or an explicit folder order (Pascal-VOC is remapped to the GL-MCM class order this way). Files are
  ordered exactly as ``torchvision.datasets.ImageFolder`` orders them (class by class, ``sorted(os.walk(...))``,
  then sorted file names), so batch composition matches the reference code. OOD sets (SeTAR keeps them in a
  single dummy class folder ``images/``) get label -1.
* **OpenOOD imglists** (:func:`read_imglist`): ``relative/path label`` per line, split on the first space;
  paths are relative to a data directory; OOD lists get label -1 whatever the file says.
* **SeTAR JSON lists** (:func:`read_jsonlist`): ``{"folder": ["file", ...], ...}`` with folders relative to the
  split directory (``"n01440764"``, ``"images"``, ``"images/banded"``); the first path component is the class
  folder. Ordered like the ImageFolder reading of the same tree.

Hidden files (``._x.jpg`` left by macOS archives, ``.directory``) are never images and are left out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from oodbench.data.sources import FileListSource
from oodbench.errors import DataError

# The extensions torchvision's ImageFolder accepts (case-insensitive).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

OOD_LABEL = -1


def is_image_file(name: str) -> bool:
    """True for a non-hidden file name with an image extension."""
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _walk_images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursive) as paths relative to it, in ImageFolder order."""
    out: list[str] = []
    for dirpath, _dirs, files in sorted(os.walk(folder, followlinks=True)):
        rel = os.path.relpath(dirpath, folder)
        for name in sorted(files):
            if is_image_file(name):
                out.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return out


def class_folders(root: str | Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``root`` (empty when ``root`` does not exist)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=True) and not e.name.startswith("."))


def read_imagefolder(root: str | Path, name: str, *, classes: Sequence[str] | None = None,
                     ood: bool = False, class_subset: bool = False) -> FileListSource:
    """Read an ImageFolder tree.

    Args:
        root: the split folder (its sub-folders are the classes).
        name: display name of the split.
        classes: explicit class-folder order (label ``i`` = folder ``classes[i]``); None = sorted folder names.
            Every listed folder must exist, unless ``class_subset``.
        class_subset: the tree holds some of the ``classes`` folders (ImageNet-R: 200 of the 1,000 wnids); each
            image is labelled with its folder's index in ``classes``, and a folder not in ``classes`` is an error.
        ood: label every image -1. Images directly inside ``root`` are then read too (an OOD folder needs no
            dummy class folder); for ID splits they are ignored, as ImageFolder does.

    Returns:
        A :class:`FileListSource` rooted at ``root``; ``source.classes`` holds the class folders in label order.
    """
    root = Path(root)
    folders = class_folders(root)
    index = None
    if class_subset:
        if classes is None:
            raise DataError(f"{name}: a class-subset split needs the full class-folder order")
        position = {c: i for i, c in enumerate(classes)}
        unknown = [f for f in folders if f not in position]
        if unknown:
            raise DataError(f"{name}: folder(s) {', '.join(unknown[:5])} under {root} are not among the "
                            f"{len(classes):,} classes of the benchmark")
        index = [position[f] for f in folders]
    elif classes is not None:
        absent = [c for c in classes if c not in folders]
        if absent and root.is_dir():
            raise DataError(f"{name}: class folder(s) {', '.join(absent[:5])} missing under {root}")
        folders = list(classes)
    relpaths: list[str] = []
    labels: list[int] = []
    if ood and root.is_dir():
        top = sorted(e.name for e in os.scandir(root) if e.is_file() and is_image_file(e.name))
        relpaths += top
        labels += [OOD_LABEL] * len(top)
    for k, folder in enumerate(folders):
        files = _walk_images(root / folder)
        relpaths += [f"{folder}/{f}" for f in files]
        labels += [OOD_LABEL if ood else (k if index is None else index[k])] * len(files)
    return FileListSource(name, root, relpaths, np.asarray(labels, dtype=np.int64),
                          classes=list(classes) if class_subset else list(folders))


def parse_imglist(text: str, list_name: str) -> tuple[list[str], list[int]]:
    """Parse OpenOOD imglist text: ``path label`` per line (first space separates), blank lines skipped."""
    paths: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        path, _, rest = line.partition(" ")
        rest = rest.strip()
        if path.startswith("/"):
            raise DataError(f"{list_name}:{lineno}: absolute path '{path}'; imglist paths are relative to the "
                            "data directory")
        try:
            label = int(rest) if rest else OOD_LABEL
        except ValueError:
            raise DataError(f"{list_name}:{lineno}: expected 'relative/path label', got '{line[:80]}'") from None
        paths.append(path)
        labels.append(label)
    return paths, labels


def read_imglist(list_file: str | Path, data_dir: str | Path, name: str, *, ood: bool = False) -> FileListSource:
    """Read an OpenOOD ``benchmark_imglist`` file; paths are relative to ``data_dir``; ``ood`` forces label -1."""
    list_file = Path(list_file)
    try:
        text = list_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{name}: cannot read image list {list_file}: {exc.strerror or exc}") from None
    paths, labels = parse_imglist(text, str(list_file))
    if ood:
        labels = [OOD_LABEL] * len(paths)
    return FileListSource(name, Path(data_dir), paths, np.asarray(labels, dtype=np.int64))


def load_jsonlist(list_file: str | Path, name: str) -> dict[str, list[str]]:
    """Load a SeTAR JSON list ``{folder: [file, ...]}``; empty folders are dropped (as SeTAR's checker does)."""
    list_file = Path(list_file)
    try:
        data = json.loads(list_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{name}: cannot read file list {list_file}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: {list_file} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError(f"{name}: {list_file} must map folder names to lists of file names")
    return {str(k).strip("/"): [str(f) for f in v] for k, v in data.items() if v}


def read_jsonlist(list_file: str | Path, split_dir: str | Path, name: str, *,
                  classes: Sequence[str] | None = None, ood: bool = False) -> FileListSource:
    """Read a SeTAR JSON file list for the split folder ``split_dir``.

    Labels come from the first component of each folder: its index in ``classes`` when given, else in the
    sorted set of first components (what ImageFolder would find). ``ood`` labels everything -1.
    """
    folders = load_jsonlist(list_file, name)
    tops = sorted({f.split("/", 1)[0] for f in folders})
    order = list(classes) if classes is not None else tops
    unknown = [t for t in tops if t not in order]
    if unknown and not ood:
        raise DataError(f"{name}: {list_file} has class folder(s) {', '.join(unknown[:5])} that are not classes "
                        "of the benchmark")
    index = {c: i for i, c in enumerate(order)}
    items = []
    for folder, files in folders.items():
        top = folder.split("/", 1)[0]
        for f in files:
            items.append((index.get(top, len(order)), folder, f))
    items.sort()  # ImageFolder order: class, then sorted(os.walk) directory, then sorted file name
    relpaths = [f"{folder}/{f}" for _, folder, f in items]
    labels = [OOD_LABEL if ood else i for i, _, _ in items]
    return FileListSource(name, Path(split_dir), relpaths, np.asarray(labels, dtype=np.int64), classes=order)
