"""Batched JPEG decoding on the model's device (nvJPEG on CUDA), resize and centre crop there too.

The default preprocessing (``decode="pil"``) is the official one: PIL decodes, resizes (bicubic) and crops each
image in a DataLoader worker. ``decode="gpu"`` is an explicit option for GPU machines whose CPUs cannot keep
up: workers only read the file bytes, and the main process decodes a whole chunk of JPEGs at once with
``torchvision.io.decode_jpeg(device=...)`` (nvJPEG on a CUDA device, libjpeg on the CPU), then resizes with
``torch`` (antialiased bicubic / bilinear, rounded to 8 bits as PIL does), centre-crops and normalises on the
device. The steps and sizes are read from the backbone's own transform (``backbone.preprocess()``:
``Resize -> CenterCrop -> [to RGB] -> ToTensor -> Normalize``), so the output has the shape and the meaning the
backbone expects. A transform with any other step is refused (one line).

Pixels differ slightly from the PIL path (the resize kernels are not bit-identical; nvJPEG's IDCT differs from
libjpeg's), so the option is part of the feature-cache key (:func:`decode_identity`) and recorded in results.
On a CPU, ``decode_jpeg`` decodes exactly as PIL does (same libjpeg), so measured differences there come from
the resize alone.

Per file, the PIL path is used instead where the fast path cannot be trusted or fails:

* not a JPEG (PNG, BMP, ...: checked by the file's first bytes), or a JPEG whose frame has neither 1 nor 3
  components (CMYK / YCCK), or a JPEG whose header cannot be parsed: decided in the worker, which then runs the
  PIL preprocessing there;
* ``decode_jpeg`` raises on it (corrupt, truncated, a coding the decoder lacks): decided in the main process,
  which then loads the file with PIL; if PIL cannot read it either, it is reported unreadable with PIL's reason,
  exactly as on the PIL path.

The result of a chunk keeps the order of its items whatever path each one took.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torchvision import transforms as T
from torchvision.transforms.v2 import functional as F2

from oodbench.data.loader import UNREADABLE, load_image, unreadable_reason
from oodbench.data.sources import ImageSource
from oodbench.errors import UserError

#: Accepted values of the ``decode`` option; the first is the default.
DECODES = ("pil", "gpu")
DEFAULT_DECODE = "pil"
_SOI = b"\xff\xd8\xff"
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic variants); not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def check_decode(decode: str) -> str:
    """``decode`` if known, else a one-line :class:`~oodbench.errors.UserError`."""
    if decode not in DECODES:
        raise UserError(f"decode must be one of {', '.join(DECODES)}, got '{decode}'")
    return decode


def decode_identity(decode: str, device: str | torch.device | None) -> dict | None:
    """What the pixels of the ``decode`` path depend on (a cache-key ingredient); None for the default path."""
    check_decode(decode)
    if decode == DEFAULT_DECODE:
        return None
    kind = torch.device(device).type if device is not None else "cpu"
    return {"name": decode, "jpeg": "nvjpeg" if kind == "cuda" else "libjpeg", "resize": "torch-antialias-round",
            "fallback": "pil"}


def jpeg_components(data: bytes) -> int | None:
    """Number of colour components in the first frame header of a JPEG, or None if it is not a parsable JPEG."""
    if not data.startswith(_SOI):
        return None
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF:
            return data[pos + 9] if pos + 9 < n else None
        if marker == 0xDA or length < 2:  # scan data before any frame header: malformed
            return None
        pos += 2 + length
    return None


# ------------------------------------------------------------------------------------------ the transform
@dataclass(frozen=True)
class DevicePreprocess:
    """The geometric and colour steps of a backbone transform, to run on decoded ``uint8 [3, H, W]`` tensors.

    Attributes:
        steps: ``("resize", size, interpolation, max_size)`` / ``("crop", (h, w))`` in transform order.
        mean, std: the final ``Normalize``.
        host: the PIL fallback: the same transform ending in ``PILToTensor`` (``uint8 [3, h, w]``).
    """

    steps: tuple
    mean: tuple[float, ...]
    std: tuple[float, ...]
    host: Callable

    @classmethod
    def from_transform(cls, transform) -> "DevicePreprocess":
        """Read ``Resize`` / ``CenterCrop`` / RGB conversion / ``ToTensor`` / ``Normalize`` from a ``Compose``.

        Raises:
            UserError: another step (random crops, padding, a custom callable) that the device path cannot copy.
        """
        items = list(getattr(transform, "transforms", None) or ())
        if len(items) < 2 or type(items[-2]).__name__ not in ("ToTensor", "MaybeToTensor") \
                or not isinstance(items[-1], T.Normalize):
            raise UserError("--decode gpu needs a preprocessing that ends in ToTensor + Normalize; this backbone's "
                            "does not — use --decode pil")
        steps = []
        for step in items[:-2]:
            if isinstance(step, T.Resize):
                if step.interpolation not in (T.InterpolationMode.BICUBIC, T.InterpolationMode.BILINEAR,
                                              T.InterpolationMode.NEAREST):
                    raise UserError(f"--decode gpu: unsupported resize interpolation {step.interpolation.value}; "
                                    "use --decode pil")
                steps.append(("resize", step.size, step.interpolation, step.max_size))
            elif isinstance(step, T.CenterCrop):
                steps.append(("crop", tuple(step.size)))
            elif "rgb" in getattr(step, "__name__", type(step).__name__).lower():
                continue  # decode_jpeg(mode=RGB) already gives 3 channels; the fallback keeps the step
            else:
                raise UserError(f"--decode gpu cannot run the preprocessing step {type(step).__name__} on the "
                                "device; use --decode pil")
        host = T.Compose([*items[:-2], T.PILToTensor()])
        return cls(tuple(steps), tuple(map(float, items[-1].mean)), tuple(map(float, items[-1].std)), host)

    def geometry(self, images: torch.Tensor) -> torch.Tensor:
        """Resize / crop ``uint8 [B, 3, H, W]`` (one size) as the PIL steps do; returns ``uint8 [B, 3, h, w]``."""
        x = images
        for step in self.steps:
            if step[0] == "resize":
                _, size, mode, max_size = step
                if mode == T.InterpolationMode.NEAREST:
                    x = F2.resize(x, size, interpolation=mode, max_size=max_size)
                else:
                    # float kernel, then rounded and clipped to 8 bits as PIL stores its resized image
                    y = F2.resize(x.float(), size, interpolation=mode, max_size=max_size, antialias=True)
                    x = y.round_().clamp_(0, 255).to(torch.uint8)
            else:
                x = F2.center_crop(x, list(step[1]))
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, 3, h, w]`` -> float32, in ToTensor + Normalize's order (``/255``, ``-mean``, ``/std``)."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        return x.float().div_(255).sub_(mean).div_(std)


# ------------------------------------------------------------------------------------------ workers
class RawDataset(torch.utils.data.Dataset):
    """Items ``(kind, payload, index, reason)`` read in DataLoader workers:

    * ``("jpeg", bytes, i, None)``: the file's content, for the device decoder;
    * ``("pixels", uint8 [3, h, w], i, None)``: the PIL fallback, already resized and cropped;
    * ``(None, None, i, reason)``: unreadable.
    """

    def __init__(self, source: ImageSource, host: Callable):
        self.source = source
        self.host = host

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        path = getattr(self.source, "path", None)
        if path is not None:
            try:
                data = path(index).read_bytes()
            except OSError as exc:
                return None, None, index, unreadable_reason(exc)
            if jpeg_components(data) in (1, 3):
                return "jpeg", data, index, None  # plain bytes: pickled through the pipe, no shared-memory handle
        return self._pixels(index)

    def _pixels(self, index: int):
        try:
            image = load_image(self.source, index)
        except UNREADABLE as exc:
            return None, None, index, unreadable_reason(exc)
        return "pixels", self.host(image), index, None


def collate_raw(items):
    """Items stay a list (file bytes differ in length); the decoder batches them."""
    return list(items)


# ------------------------------------------------------------------------------------------ main process
class BatchDecoder:
    """Turns a chunk of :class:`RawDataset` items into the model's input on ``device``.

    Args:
        source: the images (for the PIL fallback of files the decoder rejects).
        transform: the backbone's preprocessing (``backbone.preprocess()``).
        device: where decoding, resizing and normalising run (``cuda``: nvJPEG).

    Attributes:
        fallbacks: number of images that went through the PIL path so far (worker and main process).
    """

    def __init__(self, source: ImageSource, transform, device: str | torch.device):
        self.source = source
        self.pre = DevicePreprocess.from_transform(transform)
        self.device = torch.device(device)
        self.fallbacks = 0

    def _decode(self, blobs: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """Decoded ``uint8 [3, H, W]`` per blob; None where the decoder fails (one failure fails a whole call)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its image io
            try:
                out = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=self.device)
                return list(out)
            except RuntimeError:
                if len(blobs) == 1:
                    return [None]
            return [self._decode([b])[0] for b in blobs]

    def __call__(self, items: Sequence) -> tuple[torch.Tensor | None, torch.Tensor, list[tuple[int, str]]]:
        """``(images float32 [B, 3, h, w] on device | None, indices int64 [B], bad [(index, reason)])``, item order."""
        items = list(items)
        slots: list[torch.Tensor | None] = [None] * len(items)
        bad: list[tuple[int, str]] = []
        jpeg = [k for k, it in enumerate(items) if it[0] == "jpeg"]
        blobs = [torch.frombuffer(bytearray(items[k][1]), dtype=torch.uint8) for k in jpeg]
        decoded = self._decode(blobs) if jpeg else []
        for k, img in zip(jpeg, decoded):
            if img is None:  # the decoder rejected it: PIL decides (maybe it is unreadable after all)
                items[k] = RawDataset(self.source, self.pre.host)._pixels(items[k][2])
            else:
                slots[k] = img
        for k, (kind, payload, index, reason) in enumerate(items):
            if kind == "pixels":
                slots[k] = payload.to(self.device, non_blocking=True)
                self.fallbacks += 1
            elif kind is None:
                bad.append((index, reason))
        good = [k for k in range(len(items)) if slots[k] is not None]
        # images of one size are resized together; the geometric steps need no per-image Python beyond that
        out: list[torch.Tensor | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for k in good:
            if items[k][0] == "pixels":
                out[k] = slots[k]
            else:
                groups.setdefault(tuple(slots[k].shape), []).append(k)
        for ks in groups.values():
            done = self.pre.geometry(torch.stack([slots[k] for k in ks]))
            for k, img in zip(ks, done):
                out[k] = img
        indices = torch.tensor([items[k][2] for k in good], dtype=torch.int64)
        if not good:
            return None, indices, bad
        return self.pre.normalize(torch.stack([out[k] for k in good])), indices, bad


class DecodeLoader:
    """Iterable of ``(images on device, normalised | None, indices, bad)`` per chunk of ``batch_sampler``.

    A drop-in for the PIL path's DataLoader in the extraction runner: the same chunks, the same triples, but the
    images are already on ``device`` and normalised.
    """

    def __init__(self, source: ImageSource, transform, *, device, batch_sampler, num_workers: int = 0):
        self.decoder = BatchDecoder(source, transform, device)
        self.loader = torch.utils.data.DataLoader(RawDataset(source, self.decoder.pre.host),
                                                  batch_sampler=batch_sampler, num_workers=num_workers,
                                                  collate_fn=collate_raw)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for items in self.loader:
            yield self.decoder(items)


def make_loader(source: ImageSource, transform, *, decode: str, device, batch_sampler, num_workers: int = 0):
    """The loader of the ``decode`` path: :class:`DecodeLoader` for ``"gpu"``, the PIL DataLoader for ``"pil"``.

    For ``"pil"`` the triples hold host tensors as :class:`~oodbench.data.loader.SourceDataset` makes them
    (``transform``'s output); for ``"gpu"`` normalised float32 tensors on ``device``.
    """
    from oodbench.data.loader import SourceDataset, collate

    if check_decode(decode) == "gpu":
        return DecodeLoader(source, transform, device=device, batch_sampler=batch_sampler, num_workers=num_workers)
    return torch.utils.data.DataLoader(SourceDataset(source, transform), batch_sampler=batch_sampler,
                                       num_workers=num_workers, collate_fn=collate,
                                       pin_memory=torch.device(device).type == "cuda")
