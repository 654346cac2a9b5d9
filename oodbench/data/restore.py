"""Copy the files a SeTAR JSON list names from a downloaded folder into the split folder of a data root.

SeTAR ships its frozen splits as lists (``{folder: [file, ...]}``) and restores them with
``data/utils/restore_files.py``; this is the same step (``oodbench data restore``): e.g. the 1,000 ImageNet-1K
val images out of an extracted ``ILSVRC2012_img_train`` tree, or VOC val/test out of GL-MCM's ``ID_VOC_single``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from oodbench.data.readers import load_jsonlist


def restore_from_list(list_file: str | Path, source_dir: str | Path, target_dir: str | Path, *,
                      link: bool = False) -> tuple[int, list[str]]:
    """Copy (or hard-link) ``source_dir/<folder>/<file>`` to ``target_dir/<folder>/<file>`` for every listed file.

    Files already in place are kept. Returns ``(files now in place, listed files not found in source_dir)``.
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    done, missing = 0, []
    for folder, files in load_jsonlist(list_file, str(list_file)).items():
        for name in files:
            src, dst = source_dir / folder / name, target_dir / folder / name
            if dst.is_file():
                done += 1
                continue
            if not src.is_file():
                missing.append(str(src))
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if link:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            else:
                shutil.copy2(src, dst)
            done += 1
    return done, missing
