"""Several processes, one command: ``torchrun --nproc-per-node N -m oodbench run|search ...``.

When torchrun's variables are set (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``), :func:`session` joins the process group: NCCL when the command runs on CUDA (each process on
``cuda:LOCAL_RANK``), gloo on the CPU. Without them everything here is a no-op for a world of one process, so
the same code path serves a plain ``oodbench run``.

What is divided and who writes:

* feature extraction (:mod:`oodbench.features.runner`): the forward batches of a split (the batches one process
  would run, in file-list order) are dealt round-robin to the ranks; rank 0 gathers them and is the only writer
  of the feature cache, so the cache of N processes is the one a single process writes (same key, same files,
  same bytes);
* the SeTAR search (:mod:`oodbench.methods.setar.search`): the validation images and the class prompts are divided
  (:func:`share`: contiguous, even); every rank evaluates every candidate on its share, the text embeddings are
  all-gathered over the device's collective (:func:`all_gather_rows`) and the per-image loss terms over the host
  group, reduced in image order on every rank, so every rank holds the same losses and accepts the same
  candidates; rank 0 writes the checkpoints, the plan and the logs;
* scoring and the results store: rank 0 only (the other ranks wait for it and exit with its status).

Failures: local work that may fail runs inside :func:`checked` / :func:`gather_checked` /
:func:`all_gather_checked`; after it every rank learns whether any rank failed, and then every rank raises
:class:`DistributedError` naming the first failed rank and its one-line reason (the CLI prints it and exits 2),
so no rank goes on to store a result. A peer that dies outright breaks the connection or hits the process-group
timeout (``$OODBENCH_DIST_TIMEOUT`` seconds, default 1800), which ends the command the same way.

Object collectives (statuses, small metadata, per-image loss terms) use a gloo group on the CPU also when the
default group is NCCL, so they never occupy the GPUs' streams; tensors (gathered features, text embeddings) travel
over the default group (:func:`all_gather_rows`, :func:`gather_tensors`): NCCL, device to device, on GPUs; gloo on
the CPU. :func:`traffic` counts the bytes they move.

Test hook: ``OODBENCH_FAIL_RANK=R`` (optionally with ``OODBENCH_FAIL_PHASE=extract|search|score``) makes rank R
raise inside its next checked phase (of that name); it exists for the tests of this behaviour only.
"""

from __future__ import annotations

import datetime
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from oodbench.errors import UserError

log = logging.getLogger("oodbench")

T = TypeVar("T")
TIMEOUT_ENV = "OODBENCH_DIST_TIMEOUT"
FAIL_RANK_ENV, FAIL_PHASE_ENV = "OODBENCH_FAIL_RANK", "OODBENCH_FAIL_PHASE"
DEFAULT_TIMEOUT_S = 1800


class DistributedError(UserError):
    """One rank failed (or a peer was lost): raised on every rank with the same one-line message."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one command.

    Attributes:
        rank: global rank (0 = the writer); size: number of processes; local_rank: rank on this node;
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (a single process, no process group).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process (collectives do something)."""
        return self.size > 1


_WORLD = World()
_OBJECT_GROUP = None  # gloo group for object collectives


def world() -> World:
    """The current world (a single process unless :func:`session` joined a process group)."""
    return _WORLD


def is_main() -> bool:
    return _WORLD.rank == 0


def env_world() -> World:
    """The world torchrun describes in the environment (a single process when ``WORLD_SIZE`` is absent or 1).

    Raises:
        UserError: the variables are inconsistent (a rank outside the world, a missing rendezvous address).
    """
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World()
    rank, local = _env_int("RANK", None), _env_int("LOCAL_RANK", 0)
    if rank is None or not 0 <= rank < size:
        raise UserError(f"WORLD_SIZE={size} but RANK={os.environ.get('RANK')!r}; start several processes with "
                        "torchrun (it sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)")
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(var):
            raise UserError(f"WORLD_SIZE={size} but {var} is not set; start several processes with torchrun")
    return World(rank=rank, size=size, local_rank=local)


def _env_int(name: str, default):
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{name} must be an integer, got '{text}'") from None


def device_for(device: str, w: World) -> str:
    """The device of this rank: ``cuda`` / ``cuda:N`` become ``cuda:LOCAL_RANK`` in a multi-process world."""
    if w.active and device.startswith("cuda"):
        return f"cuda:{w.local_rank}"
    return device


@contextmanager
def session(device: str) -> Iterator[tuple[World, str]]:
    """Join the process group torchrun describes (if any) for the duration of one command.

    Yields ``(world, device)`` with this rank's device. On non-zero ranks the ``oodbench`` logger is set to
    warnings only (no progress bars, no duplicate tables). A group this joined is destroyed on exit; one that a
    caller had initialised before is used as it is and left alone.
    """
    global _WORLD, _OBJECT_GROUP
    w = env_world()
    if not w.active or _WORLD.active:
        yield _WORLD, device_for(device, _WORLD)
        return
    import torch
    import torch.distributed as dist

    device = device_for(device, w)
    if device.startswith("cuda"):
        if w.local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {w.local_rank} but this node has {torch.cuda.device_count()} CUDA device(s); "
                            "start at most one process per GPU (--nproc-per-node)")
        torch.cuda.set_device(w.local_rank)
    timeout = datetime.timedelta(seconds=_env_int(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    owned = not dist.is_initialized()  # a caller (e.g. a script using the API) may have joined a group already
    if owned:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        kwargs = {"device_id": torch.device(device)} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=timeout, **kwargs)
    else:
        backend = str(dist.get_backend())
        w = World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=w.local_rank)
    _OBJECT_GROUP = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    _WORLD = World(rank=w.rank, size=w.size, local_rank=w.local_rank, backend=backend)
    level = log.level
    if w.rank != 0:
        log.setLevel(logging.WARNING)
    log.info("distributed: %d processes (%s), rank 0 on %s", w.size, backend, device)
    try:
        yield _WORLD, device
    finally:
        log.setLevel(level)
        _WORLD, group = World(), _OBJECT_GROUP
        _OBJECT_GROUP = None
        try:
            if group is not None:
                dist.destroy_process_group(group)
            if owned:
                dist.destroy_process_group()
        except Exception as exc:  # a broken group cannot be torn down cleanly; the process ends anyway
            log.debug("process group teardown: %s", exc)


# ------------------------------------------------------------------------------------------- collectives
def _collective(name: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except DistributedError:
        raise
    except Exception as exc:
        raise DistributedError(f"rank {_WORLD.rank} of {_WORLD.size}: lost contact with the other processes during "
                               f"{name} ({_one_line(exc)}); see the other ranks' output") from None


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if _WORLD.active:
        import torch.distributed as dist

        _collective("a barrier", lambda: dist.barrier(group=_OBJECT_GROUP))


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank (pickled)."""
    if not _WORLD.active:
        return obj
    import torch.distributed as dist

    box = [obj if _WORLD.rank == src else None]
    _collective("a broadcast", lambda: dist.broadcast_object_list(box, src=src, group=_OBJECT_GROUP))
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not _WORLD.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * _WORLD.size
    _collective("an all-gather", lambda: dist.all_gather_object(out, obj, group=_OBJECT_GROUP))
    return out


def gather_object(obj: Any, dst: int = 0) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank ``dst`` (None on the others)."""
    if not _WORLD.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] | None = [None] * _WORLD.size if _WORLD.rank == dst else None
    _collective("a gather", lambda: dist.gather_object(obj, out, dst=dst, group=_OBJECT_GROUP))
    return out


# ---------------------------------------------------------------------------------------- checked phases
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


def _run_local(fn: Callable[[], T], phase: str) -> tuple[bool, Any]:
    try:
        _injected_failure(phase)
        return True, fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if not _WORLD.active:
            raise
        log.debug("rank %d failed in %s", _WORLD.rank, phase, exc_info=True)
        return False, _one_line(exc)


def _raise_first(statuses: list[tuple[int, str]]) -> None:
    if statuses:
        rank, reason = statuses[0]
        more = f" (and {len(statuses) - 1} other rank(s))" if len(statuses) > 1 else ""
        raise DistributedError(f"rank {rank} of {_WORLD.size} failed{more}: {reason}")


def checked(fn: Callable[[], T], phase: str = "") -> T:
    """Run ``fn`` on this rank; if any rank's ``fn`` raised, raise :class:`DistributedError` on every rank.

    With one process, ``fn``'s exception propagates unchanged.
    """
    ok, value = _run_local(fn, phase)
    if not _WORLD.active:
        return value
    statuses = all_gather_object(None if ok else value)
    _raise_first([(r, s) for r, s in enumerate(statuses) if s is not None])
    return value


def on_main(fn: Callable[[], T], phase: str = "") -> T | None:
    """Run ``fn`` on rank 0 only (the others wait); a failure there fails every rank. Returns None elsewhere."""
    return checked(fn if _WORLD.rank == 0 else (lambda: None), phase)


def all_gather_checked(fn: Callable[[], T], phase: str = "") -> list[T]:
    """Every rank's ``fn()``, in rank order, on every rank; any rank's failure fails every rank."""
    ok, value = _run_local(fn, phase)
    if not _WORLD.active:
        return [value]
    parts = all_gather_object((ok, value))
    _raise_first([(r, v) for r, (good, v) in enumerate(parts) if not good])
    return [v for _, v in parts]


def gather_checked(fn: Callable[[], T], phase: str = "", dst: int = 0) -> list[T] | None:
    """Every rank's ``fn()``, in rank order, on rank ``dst`` (None elsewhere); any rank's failure fails every rank.

    The payloads travel only to ``dst``; the verdict (first failure or none) is then broadcast from it.
    """
    ok, value = _run_local(fn, phase)
    if not _WORLD.active:
        return [value]
    parts = gather_object((ok, value), dst=dst)
    verdict = [(r, v) for r, (good, v) in enumerate(parts) if not good] if parts is not None else None
    verdict = broadcast_object(verdict, src=dst)
    _raise_first(verdict)
    return [v for _, v in parts] if parts is not None else None


def share(n: int, w: World | None = None) -> slice:
    """This rank's contiguous share of ``range(n)``: as even as possible, the first ``n % N`` ranks one more, in
    rank order (rank 0 the first items); a rank may get none when ``n < N``."""
    w = w or _WORLD
    base, extra = divmod(int(n), w.size)
    lo = w.rank * base + min(w.rank, extra)
    return slice(lo, lo + base + (1 if w.rank < extra else 0))


#: Bytes this process sent and received through the tensor collectives below, by what moved them
#: (:func:`traffic`, :func:`reset_traffic`).
_TRAFFIC: dict[str, int] = {}


def traffic() -> dict[str, int]:
    """Bytes of tensors this process sent plus received through :func:`all_gather_rows` and
    :func:`gather_tensors`, by label, since the last :func:`reset_traffic`."""
    return dict(_TRAFFIC)


def reset_traffic() -> None:
    _TRAFFIC.clear()


def count_traffic(label: str, nbytes: int) -> None:
    """Add ``nbytes`` moved between processes under ``label`` (for transfers made outside this module)."""
    _TRAFFIC[label] = _TRAFFIC.get(label, 0) + int(nbytes)


_count = count_traffic


def tensor_backend() -> str | None:
    """The collective tensors travel on: the default group's backend (NCCL when the command runs on CUDA, gloo on
    the CPU); None for one process."""
    return _WORLD.backend if _WORLD.active else None


def all_gather_rows(t, label: str = "all_gather_rows"):
    """Every rank's rows ``t`` (``[n_r, ...]``, ``n_r`` may differ and be 0), concatenated in rank order, on every
    rank; over the default group, i.e. the device's own collective (NCCL) for CUDA tensors, gloo on the CPU.

    The row counts travel first (small, through the host group); the rows are padded to the longest share for the
    collective and cut back. Counted in :func:`traffic` as the bytes of the real rows sent and received.
    """
    if not _WORLD.active:
        return t
    import torch
    import torch.distributed as dist

    counts = all_gather_object(int(t.shape[0]))
    top = max(counts)
    padded = t if t.shape[0] == top else torch.cat([t, t.new_zeros((top - t.shape[0], *t.shape[1:]))])
    bufs = [torch.empty_like(padded) for _ in counts]
    _collective("an all-gather of tensors", lambda: dist.all_gather(bufs, padded.contiguous()))
    row = t[0:1].numel() * t.element_size() if t.shape[0] else padded[0:1].numel() * padded.element_size()
    _count(label, row * (t.shape[0] * (_WORLD.size - 1) + sum(counts) - t.shape[0]))
    return torch.cat([b[:c] for b, c in zip(bufs, counts)])


def broadcast_tensor(t, src: int = 0, label: str = "broadcast_tensor"):
    """``t`` of rank ``src`` into ``t`` on every rank (same shape and dtype everywhere), over the default group (NCCL
    for CUDA tensors, gloo on the CPU); counted in :func:`traffic` (sent by ``src`` once per other rank, received
    once by each)."""
    if not _WORLD.active:
        return t
    import torch.distributed as dist

    _collective("a tensor broadcast", lambda: dist.broadcast(t, src=src))
    n = t.numel() * t.element_size()
    _count(label, n * (_WORLD.size - 1) if _WORLD.rank == src else n)
    return t


def gather_tensors(tensors: dict[str, Any] | None, dst: int = 0, label: str = "gather_tensors"
                   ) -> list[dict[str, Any] | None] | None:
    """Every rank's dict of tensors (or None), in rank order, on rank ``dst`` (None elsewhere), the tensors moved
    point to point over the default group (NCCL for CUDA tensors: device memory to device memory, not through the
    host); names, shapes and dtypes travel first through the host group. Counted in :func:`traffic`."""
    if not _WORLD.active:
        return [tensors]
    import torch
    import torch.distributed as dist

    spec = None if tensors is None else {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    specs = all_gather_object(spec)
    me = _WORLD.rank
    if me != dst:
        if tensors is not None:
            for k in sorted(tensors):
                v = tensors[k].contiguous()
                _collective("a tensor send", lambda v=v: dist.send(v, dst=dst))
                _count(label, v.numel() * v.element_size())
        return None
    device = next(iter(tensors.values())).device if tensors else _device_of_group()
    out: list[dict[str, Any] | None] = []
    for r, sp in enumerate(specs):
        if r == me:
            out.append(tensors)
            continue
        if sp is None:
            out.append(None)
            continue
        got = {}
        for k in sorted(sp):
            shape, dtype = sp[k]
            buf = torch.empty(shape, dtype=dtype, device=device)
            _collective("a tensor receive", lambda buf=buf, r=r: dist.recv(buf, src=r))
            _count(label, buf.numel() * buf.element_size())
            got[k] = buf
        out.append(got)
    return out


def _device_of_group():
    import torch

    return torch.device(f"cuda:{torch.cuda.current_device()}") if _WORLD.backend == "nccl" else torch.device("cpu")


def deal(items: list[T], w: World | None = None) -> list[T]:
    """This rank's share of ``items``: round-robin (item i to rank i mod N), nothing duplicated or dropped."""
    w = w or _WORLD
    return items[w.rank::w.size]


def _injected_failure(phase: str) -> None:
    rank = os.environ.get(FAIL_RANK_ENV)
    if rank is None or rank.strip() != str(_WORLD.rank):
        return
    wanted = os.environ.get(FAIL_PHASE_ENV)
    if wanted and wanted != phase:
        return
    raise RuntimeError(f"failure injected in {phase or 'a checked phase'} by {FAIL_RANK_ENV} (test hook)")


__all__ = ["World", "DistributedError", "world", "is_main", "env_world", "device_for", "session", "barrier",
           "broadcast_object", "all_gather_object", "gather_object", "checked", "on_main", "all_gather_checked",
           "gather_checked", "deal", "share", "all_gather_rows", "gather_tensors", "traffic", "reset_traffic",
           "count_traffic", "broadcast_tensor",
           "tensor_backend"]
