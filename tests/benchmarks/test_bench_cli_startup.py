"""Start-up of the `oodbench` command: each command below run 5 times in a fresh interpreter, wall time.

Goal (issue 12, finding 8): under 1 s on 2 CPU cores for argument errors, `--help`, `oodbench list` and `oodbench
data layout`; and (issue 19, finding 8) for the value errors that need no model: an unknown `--post`, a batch size
or epoch count of 0, a file as `--results-root`. Run with ``pytest -q -m benchmark -s tests/benchmarks/test_bench_cli_startup.py`` (``-s`` prints
the min / median table). Import profile: ``python -X importtime -m oodbench.cli list 2> imports.txt``.
"""

import statistics
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.benchmark

COMMANDS = [
    ["--help"], ["run", "--help"], ["search", "--help"], ["finetune", "--help"], ["data", "verify", "--help"],
    ["list"], ["list", "methods"], ["data", "layout"], ["run", "--no-such-option"], ["bogus"],
    ["run", "--post", "nosuch"], ["run", "--batch-size", "0"], ["run", "--results-root", __file__],
    ["finetune", "--method", "lora", "--epochs", "0"],
]
ROUNDS = 5
GOAL_S = 1.0


def _wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "oodbench.cli", *argv], capture_output=True, timeout=120)
    seconds = time.perf_counter() - t0
    assert proc.returncode in (0, 2), proc.stderr.decode()[-2000:]
    return seconds


def test_cli_startup_under_a_second():
    _wall(["--help"])  # compiled bytecode in place, files in the page cache
    rows = []
    for argv in COMMANDS:
        times = [_wall(argv) for _ in range(ROUNDS)]
        rows.append((" ".join(argv), min(times), statistics.median(times)))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'oodbench ...':<{width}}  min s  median s")
    for name, lo, med in rows:
        print(f"{name:<{width}}  {lo:5.2f}  {med:8.2f}")
    slow = [(name, med) for name, _, med in rows if med >= GOAL_S]
    assert not slow, f"median start-up >= {GOAL_S} s: {slow}"
