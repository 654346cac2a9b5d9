"""The batched forward pass behind :func:`oodbench.features.extract.extract_features`.

Images are read and preprocessed by DataLoader workers in *chunks* (a few images each) that the main process
joins into the model's batches: the model sees exactly the batches it would see without chunking, but the
pipeline fills in the time of one chunk rather than one batch, and the work spreads evenly over the workers.
On a GPU, a preprocessing that ends in ``ToTensor() + Normalize(mean, std)`` is split: workers send uint8
pixels (4x less to copy) and the division by 255 and the normalisation run on the device, in float32 and in
the same order as torchvision (``x.float() / 255``, ``- mean``, ``/ std``), so the tensors are the same.
Outputs stay on the device until a shard is complete, so the GPU is not stopped after every batch.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from torchvision import transforms as T

from oodbench.data.loader import SourceDataset, collate
from oodbench.data.sources import ArraySource
from oodbench.errors import DataError
from oodbench.features.cache import INDEX, Entry

log = logging.getLogger("oodbench")

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
CHUNK = 32  # images per DataLoader item


def default_workers(source, device: torch.device) -> int:
    """0 for in-memory sources; else most cores on a GPU machine, a few on a CPU one (the model needs them)."""
    if isinstance(source, ArraySource):
        return 0
    cpus = os.cpu_count() or 1
    return max(1, min(12, cpus - 2)) if device.type == "cuda" else max(1, min(4, cpus // 2))


def device_split(transform):
    """``(host transform -> uint8 [3, H, W], mean, std)`` for ``Compose([..., ToTensor(), Normalize()])``, else None."""
    steps = getattr(transform, "transforms", None)
    if not steps or len(steps) < 2:
        return None
    to_tensor, norm = steps[-2], steps[-1]
    if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor") or not isinstance(norm, T.Normalize):
        return None
    return T.Compose([*steps[:-2], T.PILToTensor()]), tuple(map(float, norm.mean)), tuple(map(float, norm.std))


def run_shards(backbone, source, entry: Entry, todo: dict[int, set[str]], *, batch_size: int, num_workers,
               precision: str, device, on_bad: str) -> int:
    """Forward the images of the shards in ``todo`` (shard -> names to compute); write each finished shard.

    Returns:
        The number of forward passes (batches) run.
    """
    from oodbench.console import progress

    dev = torch.device(device) if device is not None else backbone.device
    if dev != backbone.device:
        backbone.to(dev)
    if num_workers is None:
        num_workers = default_workers(source, dev)
    transform = backbone.preprocess()
    split = device_split(transform) if dev.type == "cuda" else None
    if split is not None:
        transform = split[0]
        mean = torch.tensor(split[1], dtype=torch.float32, device=dev).view(-1, 1, 1)
        std = torch.tensor(split[2], dtype=torch.float32, device=dev).view(-1, 1, 1)
    batches = [list(r[i:i + batch_size]) for s in sorted(todo) for r in [entry.shard_range(s)]
               for i in range(0, len(r), batch_size)]
    chunk = max(1, min(CHUNK, batch_size))
    chunks = [b[i:i + chunk] for b in batches for i in range(0, len(b), chunk)]
    loader = torch.utils.data.DataLoader(SourceDataset(source, transform), batch_sampler=chunks,
                                         num_workers=num_workers, collate_fn=collate, pin_memory=dev.type == "cuda")
    dtype = PRECISIONS[precision]
    names_all = sorted(set().union(*todo.values()))
    log.info("features of %s: extracting %s for %s of %s images on %s (%s, batch %d, %d workers)", source.name,
             ", ".join(names_all) or "the file check", f"{sum(map(len, batches)):,}", f"{len(source):,}", dev,
             precision, batch_size, num_workers)
    acc: dict[int, dict[str, list]] = {}
    pending: list[torch.Tensor] = []
    count = 0
    with progress() as prog, torch.inference_mode():
        task = prog.add_task(f"features {source.name}", total=sum(map(len, batches)))
        for idx, (images, indices, bad) in zip(chunks, loader):
            s = idx[0] // entry.shard_size
            need = todo[s]
            a = acc.setdefault(s, {"index": [], "bad": [], **{x: [] for x in need}})
            if bad:
                if on_bad == "fail":
                    i, reason = bad[0]
                    raise DataError(f"{source.name}: unreadable image {source.describe(i)} ({reason}) — fix or remove "
                                    f"it, or pass --on-bad skip to leave unreadable images out")
                a["bad"] += bad
            if images is not None:
                a["index"].append(indices.numpy())
                if need:
                    x = images.to(dev, non_blocking=True)
                    pending.append(x.float().div_(255).sub_(mean).div_(std) if split is not None else x)
            rows = entry.shard_range(s)
            end_of_batch = (idx[-1] - rows.start + 1) % batch_size == 0 or idx[-1] == rows.stop - 1
            if end_of_batch and pending:
                x = pending[0] if len(pending) == 1 else torch.cat(pending)
                pending = []
                with torch.autocast(device_type=dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    out = backbone.compute_features(x, set(need))
                count += 1
                for name in need:
                    if name not in out:
                        raise RuntimeError(f"backbone {backbone.name}.compute_features did not return '{name}'")
                    a[name].append(out[name].detach())
            prog.advance(task, len(idx))
            if idx[-1] == rows.stop - 1:
                _write_shard(entry, s, need, acc.pop(s))
    return count


def _write_shard(entry: Entry, s: int, need: set[str], a: dict[str, list]) -> None:
    index = np.concatenate(a["index"]) if a["index"] else np.zeros(0, np.int64)
    if entry.has(INDEX, s):
        if not np.array_equal(entry.read(INDEX, s), index):
            raise RuntimeError(f"feature cache {entry.path}: the readable images of shard {s} changed since it was "
                               "written; delete that folder and run again")
    else:
        entry.write_bad(s, a["bad"])
        entry.write(INDEX, s, index)
    for x in sorted(need):
        arr = torch.cat(a[x]).float().cpu().numpy() if a[x] else np.zeros(0, np.float32)
        entry.write(x, s, arr)
