"""Where and with what a run was computed: code version and commit, library versions, device, CPU, thread count.

Every run the pipeline stores carries :func:`provenance` in ``RunRecord.provenance`` (shown by ``oodbench runs
show``). It is left out of a run's identity (:func:`oodbench.results.store.run_identity`): the numbers do not depend
on the CPU thread count (:mod:`oodbench.threads`), so a rerun with another thread count is the same run. Nothing
here imports torch unless it is already imported, nor open_clip or timm (their versions come from the installed
package metadata).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded (None when not installed) -> their module.
PACKAGES = {"torch": "torch", "open_clip_torch": "open_clip", "timm": "timm", "numpy": "numpy",
            "scikit-learn": "sklearn", "faiss-cpu": "faiss"}


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout oodbench runs from (12 hex digits, ``+dirty`` when tracked files are modified),
    or None outside a git checkout (an installed wheel) or without git."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if sha.returncode != 0 or not sha.stdout.strip():
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_version(name: str) -> str | None:
    """The version of distribution ``name``: its module's ``__version__`` when the module is imported (torch's
    names the build, ``2.14.1+cu130``), else the installed metadata's; None when not installed."""
    module = sys.modules.get(PACKAGES.get(name, name))
    if isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`), or ``"unknown"``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: str | None) -> str | None:
    """The GPU's name for a CUDA device (None otherwise, or when it cannot be read)."""
    if not device or not str(device).startswith("cuda") or "torch" not in sys.modules:
        return None
    import torch

    try:
        return torch.cuda.get_device_name(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):
        return None


def provenance(device: str | None = None) -> dict[str, Any]:
    """What a stored run records about how it was computed.

    Keys: ``oodbench`` (version), ``commit`` (:func:`git_commit`), ``python``, ``packages`` (:data:`PACKAGES` ->
    version), ``device`` (as resolved: ``cpu``, ``cuda:0``), ``gpu`` (its name, CUDA only), ``cpu`` (model name),
    ``cpu_capability`` (the instruction set torch's own kernels use: ``AVX512``, ``AVX2``, ...), ``threads`` (torch's
    intra-op CPU thread count), ``cpu_count``, ``platform``.
    """
    from oodbench.version import __version__

    out: dict[str, Any] = {
        "oodbench": __version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "packages": {p: package_version(p) for p in PACKAGES},
        "device": str(device) if device is not None else None,
        "gpu": device_name(device),
        "cpu": cpu_model(),
        "cpu_capability": None,
        "threads": None,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    if "torch" in sys.modules:
        import torch

        out["threads"] = torch.get_num_threads()
        try:
            out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except (AttributeError, RuntimeError):
            pass
    return out


def describe(prov: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` rows of a recorded provenance for ``oodbench runs show``, beside its ``code`` row (the
    record's ``code_version``: version and commit); empty for runs stored before provenance was recorded."""
    if not prov:
        return []
    pk = prov.get("packages") or {}
    libs = ", ".join(f"{k} {v}" for k, v in pk.items() if v) or "-"
    machine = (f"{prov.get('cpu') or '?'} ({prov.get('cpu_capability') or '?'}), "
               f"{prov.get('threads') if prov.get('threads') is not None else '?'} thread(s) of "
               f"{prov.get('cpu_count') or '?'} CPUs")
    rows = [("libraries", f"python {prov.get('python', '?')}, {libs}"), ("CPU", machine)]
    if prov.get("gpu"):
        rows.append(("GPU", str(prov["gpu"])))
    return rows
