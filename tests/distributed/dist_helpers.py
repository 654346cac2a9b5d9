"""Helpers of the distributed tests: start N processes the way torchrun does (its environment variables)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oodbench.data.sources import ArraySource

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, world: int, *args) -> None:
    """Run ``fn(rank, *args)`` in ``world`` processes with torchrun's variables set (gloo, this machine)."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(_entry, args=(world, port, fn, args), nprocs=world, join=True)


def _entry(rank: int, world: int, port: int, fn, args) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    fn(rank, *args)


def torchrun(nproc: int, args: list[str], env: dict[str, str] | None = None, timeout: float = 300):
    """``torchrun --nproc-per-node nproc -m oodbench ARGS`` (or plain ``python -m oodbench`` for nproc 0)."""
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-port", str(free_port()), "-m", "oodbench", *args]
    else:
        cmd = [sys.executable, "-m", "oodbench", *args]
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    full_env.pop("OODBENCH_FAIL_RANK", None) if not env or "OODBENCH_FAIL_RANK" not in env else None
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


@dataclass(eq=False)
class BrokenSource(ArraySource):
    """An in-memory source whose images at ``broken`` cannot be read (the loader reports them as unreadable)."""

    broken: tuple[int, ...] = ()

    def load(self, index: int):
        if index in self.broken:
            raise OSError(f"image {index} is truncated")
        return super().load(index)

    def fingerprint(self) -> str:
        return super().fingerprint() + "-broken-" + "-".join(map(str, self.broken))


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (``meta.json``'s creation time and the npz zip stamps aside:
    ``.npz`` files are compared by their arrays)."""
    import json

    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(root))
        if p.name == "meta.json":
            meta = json.loads(p.read_text())
            meta.pop("created", None)
            out[rel] = json.dumps(meta, sort_keys=True).encode()
        elif p.suffix == ".npz":
            with np.load(p) as z:
                out[rel] = b"".join(k.encode() + z[k].tobytes() for k in sorted(z.files))
        else:
            out[rel] = p.read_bytes()
    return out


def default_jobs(rank: int, out_dir: Path) -> None:
    """The 2-process work of the default suite, in one process group (starting processes is the slow part):
    the uneven extraction of ``test_dealt_extraction``, the scripted searches of ``test_dealt_search`` and the
    image-divided searches of ``test_divided_search``."""
    from oodbench import distributed

    import test_dealt_extraction as ex
    import test_dealt_search as se
    import test_divided_search as di

    with distributed.session("cpu") as (world, _):
        assert world.size == 2 and world.rank == rank and world.backend == "gloo"
        ex.job(rank, out_dir, *ex.DEFAULT_CASE)
        se.job(rank, out_dir)
        di.job(rank, out_dir)
