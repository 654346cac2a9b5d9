"""Cost of the content fingerprint of a file list: 50,000 small image files, cold and warm.

Cold = no remembered digest: every file is read and hashed (SHA-256). Warm = digests remembered in
``<cache-dir>/digests/`` by stat signature: one ``stat`` per file, no file read. The folder is made here
(``OODBENCH_BENCH_FILES`` changes the count), then left alone for longer than the racy window so that
the digests are remembered. Run with ``make bench`` or
``pytest -q -m benchmark --benchmark-enable tests/benchmarks/test_bench_fingerprint.py -s``.
"""

import os
import time

import numpy as np
import pytest
from PIL import Image

from oodbench.data import digests
from oodbench.data.readers import read_imagefolder

N_FILES = int(os.environ.get("OODBENCH_BENCH_FILES", "50000"))


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fingerprint") / "imgs"
    rng = np.random.default_rng(0)
    buf = root / "_seed.png"
    root.mkdir()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf)
    data = bytearray(buf.read_bytes())
    buf.unlink()
    for c in range(100):
        (root / f"c{c:03d}").mkdir()
    for i in range(N_FILES):  # distinct contents (a byte of the last chunk differs), ~3 KB each
        data[-20] = i % 256
        data[-21] = (i // 256) % 256
        (root / f"c{i % 100:03d}" / f"{i:06d}.png").write_bytes(data)
    time.sleep(digests.RACY_SECONDS + 0.5)  # older than the racy window: digests may be remembered
    return root


@pytest.mark.benchmark
def test_fingerprint_50k_files_cold_and_warm(many_files, tmp_path, capsys):
    t0 = time.perf_counter()
    src = read_imagefolder(many_files, "many")
    listing = time.perf_counter() - t0
    src.digest_dir = tmp_path / "digests"
    t0 = time.perf_counter()
    cold_fp = src.fingerprint()
    cold = time.perf_counter() - t0
    warm_times = []
    for _ in range(3):
        again = read_imagefolder(many_files, "many")
        again.digest_dir = tmp_path / "digests"
        t0 = time.perf_counter()
        assert again.fingerprint() == cold_fp
        warm_times.append(time.perf_counter() - t0)
    table = digests.table_path(tmp_path / "digests", many_files.resolve())
    assert len(table.read_text().splitlines()) == N_FILES + 1  # every digest remembered
    size = sum(f.stat().st_size for f in (many_files / "c000").iterdir()) * 100
    with capsys.disabled():
        print(f"\n{N_FILES:,} files ({size / 1e6:.0f} MB): listing {listing:.2f} s; fingerprint cold "
              f"{cold:.2f} s, warm {min(warm_times):.2f}-{max(warm_times):.2f} s; digest table "
              f"{table.stat().st_size / 1e6:.1f} MB; {os.cpu_count()} CPUs")
