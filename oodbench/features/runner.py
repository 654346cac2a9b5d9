"""The batched forward pass behind :func:`oodbench.features.extract.extract_features`.

Images are read and preprocessed by DataLoader workers in *chunks* (a few images each) that the main process
joins into the model's batches: the model sees exactly the batches it would see without chunking, but the
pipeline fills in the time of one chunk rather than one batch, and the work spreads evenly over the workers.
On a GPU, a preprocessing that ends in ``ToTensor() + Normalize(mean, std)`` is split: workers send uint8
pixels (4x less to copy) and the division by 255 and the normalisation run on the device, in float32 and in
the same order as torchvision (``x.float() / 255``, ``- mean``, ``/ std``), so the tensors are the same.
Outputs stay on the device until a shard is complete, so the GPU is not stopped after every batch.

Several processes (``torchrun``, :mod:`oodbench.distributed`): :func:`run_shards_dealt` deals the same batches
round-robin to the ranks and rank 0, the only writer, gathers each round in batch order and writes the shards.
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
#: How several processes gather features to rank 0: None = over the device's collective (NCCL, device to device)
#: when the process group is NCCL, else as host objects through the gloo group; True forces the tensor path on any
#: backend (the tests run it over gloo on the CPU), False the host path.
DEVICE_GATHER: bool | None = None
CHUNK = 32  # images per DataLoader item


def default_workers(source, device: torch.device) -> int:
    """0 for in-memory sources; else most cores on a GPU machine, a few on a CPU one (the model needs them).
    Several processes on one node (torchrun's ``LOCAL_WORLD_SIZE``) share the node's cores."""
    if isinstance(source, ArraySource):
        return 0
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    cpus = max(1, (os.cpu_count() or 1) // local)
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
               precision: str, device, on_bad: str, decode: str = "pil") -> int:
    """Forward the images of the shards in ``todo`` (shard -> names to compute); write each finished shard.

    In a multi-process world (:mod:`oodbench.distributed`) the batches are dealt to the ranks and rank 0 writes
    (:func:`run_shards_dealt`); ``todo`` must then be the same on every rank.

    Returns:
        The number of forward passes (batches) run (by this rank).
    """
    from oodbench import distributed

    if distributed.world().active:
        return run_shards_dealt(backbone, source, entry, todo, batch_size=batch_size, num_workers=num_workers,
                                precision=precision, device=device, on_bad=on_bad, decode=decode)
    from oodbench.console import progress

    batches = shard_batches(entry, todo, batch_size)
    forward = _Forward(backbone, source, entry.shard_size, batches, batch_size, num_workers, precision, device,
                       decode)
    forward.log_start(todo, batches)
    acc: dict[int, dict[str, list]] = {}
    with progress() as prog, torch.inference_mode():
        task = prog.add_task(f"features {source.name}", total=sum(map(len, batches)))
        for b, piece in forward.pieces(todo, on_bad, lambda n: prog.advance(task, n)):
            s = piece["shard"]
            a = acc.setdefault(s, {"index": [], "bad": [], **{x: [] for x in todo[s]}})
            _merge(a, piece)
            if b[-1] == entry.shard_range(s).stop - 1:
                _write_shard(entry, s, todo[s], acc.pop(s))
    return forward.count


def run_shards_dealt(backbone, source, entry: Entry, todo: dict[int, set[str]], *, batch_size: int, num_workers,
                     precision: str, device, on_bad: str, decode: str = "pil") -> int:
    """:func:`run_shards` over several processes: the batches a single process would run are dealt round-robin
    (batch i to rank i mod N: none duplicated, none dropped, no padding), every rank forwards its own, and after
    each round of N batches rank 0 gathers them in batch order and writes every shard that is complete. The
    batches are the single process's, so every row, and every file rank 0 writes, is the same. A failure on any
    rank fails every rank before rank 0 writes the shard it concerns.

    The outputs travel over the device's own collective when the group is NCCL (:data:`DEVICE_GATHER`;
    :func:`oodbench.distributed.gather_tensors`: device memory to device memory, then to the host on rank 0 only),
    otherwise as host arrays through the gloo group; the bytes gathered to rank 0 are logged per split and counted
    in :func:`oodbench.distributed.traffic` under ``features <split>``.
    """
    from oodbench import distributed
    from oodbench.console import progress

    w = distributed.world()
    on_device = DEVICE_GATHER if DEVICE_GATHER is not None else distributed.tensor_backend() == "nccl"
    label = f"features {source.name}"
    before = distributed.traffic().get(label, 0)
    batches = shard_batches(entry, todo, batch_size)
    mine = distributed.deal(batches, w)
    rounds = -(-len(batches) // w.size)
    forward = (_Forward(backbone, source, entry.shard_size, mine, batch_size, num_workers, precision, device,
                        decode)
               if mine else None)
    if forward is not None and w.is_main:
        forward.log_start(todo, batches)
    acc: dict[int, dict[str, list]] = {}
    with progress() as prog, torch.inference_mode():
        task = prog.add_task(f"features {source.name} ({w.size} processes)", total=sum(map(len, batches)))
        stream = forward.pieces(todo, on_bad, lambda n: None) if forward is not None else iter(())

        held: dict[str, torch.Tensor] = {}

        def next_piece():
            got = next(stream, None)
            if got is None:
                return None
            b, piece = got
            if on_device:  # the outputs stay on the device and travel by gather_tensors; the rest as objects
                held.update({k: v for k, v in piece.items() if k in todo[piece["shard"]]})
                return {k: v for k, v in piece.items() if k not in held} | {"last": b[-1]}
            return {k: (_host(v) if k in todo[piece["shard"]] else v) for k, v in piece.items()} | {"last": b[-1]}

        for k in range(rounds):
            held.clear()
            pieces = distributed.gather_checked(next_piece if k * w.size + w.rank < len(batches) else lambda: None,
                                                phase="extract")
            if on_device:
                tensors = distributed.gather_tensors(dict(held) if held else None, label=label)
                if pieces is not None:
                    pieces = [p if p is None or t is None else p | {n: _host(v) for n, v in t.items()}
                              for p, t in zip(pieces, tensors)]
            elif pieces is not None:
                distributed.count_traffic(label, sum(v.nbytes for p in pieces[1:] if p is not None  # the features
                                                     for n, v in p.items() if n in todo[p["shard"]]))  # as on device

            def write(pieces=pieces):
                for piece in pieces or ():
                    if piece is None:
                        continue
                    s = piece["shard"]
                    a = acc.setdefault(s, {"index": [], "bad": [], **{x: [] for x in todo[s]}})
                    _merge(a, piece)
                    prog.advance(task, piece["n"])
                    if piece["last"] == entry.shard_range(s).stop - 1:
                        _write_shard(entry, s, todo[s], acc.pop(s))

            distributed.on_main(write, phase="extract")
    moved = distributed.traffic().get(label, 0) - before
    if w.is_main:
        log.info("features of %s: %s bytes gathered to rank 0 (%s)", source.name, f"{moved:,}",
                 "device collective" if on_device else "host gloo group")
    return forward.count if forward is not None else 0


def shard_batches(entry: Entry, todo: dict[int, set[str]], batch_size: int) -> list[list[int]]:
    """The forward batches of the shards in ``todo``: each shard cut into ``batch_size`` runs of source indices."""
    return [list(r[i:i + batch_size]) for s in sorted(todo) for r in [entry.shard_range(s)]
            for i in range(0, len(r), batch_size)]


def _host(x):
    """A gathered batch output as a float32 numpy array (the dtype the cache stores)."""
    return x.float().cpu().numpy() if isinstance(x, torch.Tensor) else x


def _merge(a: dict[str, list], piece: dict) -> None:
    """Add one batch's piece to the accumulator of its shard."""
    a["bad"] += piece["bad"]
    if piece["index"] is not None:
        a["index"].append(piece["index"])
    for name in a:
        if name not in ("index", "bad") and name in piece:
            a[name].append(piece[name])


class _Forward:
    """The loader and the model over a list of batches: :meth:`pieces` yields one piece per batch, in order."""

    def __init__(self, backbone, source, shard_size: int, batches: list[list[int]], batch_size: int, num_workers,
                 precision: str, device, decode: str = "pil"):
        dev = torch.device(device) if device is not None else backbone.device
        if dev != backbone.device:
            backbone.to(dev)
        if num_workers is None:
            num_workers = default_workers(source, dev)
        transform = backbone.preprocess()
        split = device_split(transform) if dev.type == "cuda" else None
        self.normalize = None
        if split is not None:
            transform = split[0]
            mean = torch.tensor(split[1], dtype=torch.float32, device=dev).view(-1, 1, 1)
            std = torch.tensor(split[2], dtype=torch.float32, device=dev).view(-1, 1, 1)
            self.normalize = lambda x: x.float().div_(255).sub_(mean).div_(std)
        chunk = max(1, min(CHUNK, batch_size))
        self.chunks = [b[i:i + chunk] for b in batches for i in range(0, len(b), chunk)]
        if decode != "pil":  # decoded, resized and normalised on dev by oodbench.data.decode; same chunks
            from oodbench.data.decode import make_loader

            self.normalize = None
            self.loader = make_loader(source, backbone.preprocess(), decode=decode, device=dev,
                                      batch_sampler=self.chunks, num_workers=num_workers)
        else:
            self.loader = torch.utils.data.DataLoader(SourceDataset(source, transform), batch_sampler=self.chunks,
                                                      num_workers=num_workers, collate_fn=collate,
                                                      pin_memory=dev.type == "cuda")
        self.backbone, self.source, self.batches, self.dev = backbone, source, batches, dev
        self.shard_size = shard_size
        self.batch_size, self.num_workers, self.precision = batch_size, num_workers, precision
        self.dtype = PRECISIONS[precision]
        self.count = 0

    def log_start(self, todo: dict[int, set[str]], batches: list[list[int]]) -> None:
        names_all = sorted(set().union(*todo.values()))
        log.info("features of %s: extracting %s for %s of %s images on %s (%s, batch %d, %d workers)",
                 self.source.name, ", ".join(names_all) or "the file check", f"{sum(map(len, batches)):,}",
                 f"{len(self.source):,}", self.dev, self.precision, self.batch_size, self.num_workers)

    def pieces(self, todo: dict[int, set[str]], on_bad: str, advance):
        """Yield ``(batch, piece)`` per batch; a piece holds ``shard``, ``n`` (images), ``index`` (readable source
        indices), ``bad`` and each needed output (on the device), for the rows of that batch."""
        loader = iter(zip(self.chunks, self.loader))
        for b in self.batches:
            s = b[0] // self.shard_size
            need = todo[s]
            index, bad, pending = [], [], []
            got = 0
            while got < len(b):
                idx, (images, indices, chunk_bad) = next(loader)
                got += len(idx)
                if chunk_bad:
                    if on_bad == "fail":
                        i, reason = chunk_bad[0]
                        raise DataError(f"{self.source.name}: unreadable image {self.source.describe(i)} "
                                        f"({reason}) — fix or remove it, or pass --on-bad skip to leave unreadable "
                                        "images out")
                    bad += chunk_bad
                if images is not None:
                    index.append(indices.numpy())
                    if need:
                        x = images.to(self.dev, non_blocking=True)
                        pending.append(self.normalize(x) if self.normalize is not None else x)
                advance(len(idx))
            piece = {"shard": s, "n": len(b), "bad": bad, "index": np.concatenate(index) if index else None}
            if pending:
                x = pending[0] if len(pending) == 1 else torch.cat(pending)
                with torch.autocast(device_type=self.dev.type, dtype=self.dtype or torch.float32,
                                    enabled=self.dtype is not None):
                    out = self.backbone.compute_features(x, set(need))
                self.count += 1
                for name in need:
                    if name not in out:
                        raise RuntimeError(f"backbone {self.backbone.name}.compute_features did not return '{name}'")
                    piece[name] = out[name].detach()
            yield b, piece


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
        if a[x] and isinstance(a[x][0], np.ndarray):  # gathered from several processes: already float32 on the host
            arr = a[x][0] if len(a[x]) == 1 else np.concatenate(a[x])
        else:
            arr = torch.cat(a[x]).float().cpu().numpy() if a[x] else np.zeros(0, np.float32)
        entry.write(x, s, arr)
