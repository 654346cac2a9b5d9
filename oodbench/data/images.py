"""Decoded images to 8-bit RGB, including high-bit-depth ones.

PIL's ``convert("RGB")`` clips 16-bit and 32-bit grey images to 0..255 instead of scaling them: a 16-bit PNG
then comes out almost entirely white. :func:`to_rgb` scales those modes to 8 bits first:

* ``I;16`` / ``I;16L`` / ``I;16B`` / ``I;16N`` (16-bit PNG, TIFF, PGM) and ``I`` (32-bit integer, which is how
  PIL opens some 16-bit files): ``round(v * 255 / 65535)``, values outside 0..65535 clipped;
* ``F`` (32-bit float): ``[0, 1]`` when its largest value is at most 1, else ``[0, 65535]`` like the integer
  modes; NaN counts as 0.

Every other mode goes through ``convert("RGB")`` (alpha is dropped, palettes expanded, CMYK converted).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Grey modes holding more than 8 bits per pixel.
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an 8-bit RGB image, high-bit-depth grey modes scaled (see the module docstring)."""
    if image.mode not in HIGH_DEPTH_MODES:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float32)
    full = 65535.0
    if image.mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=full, neginf=0.0)
        if values.size and values.max() <= 1.0:
            full = 1.0
    grey = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")  # uint8 [H, W] -> mode L
