"""`make test` sets up the browser the leaderboard tests need (the Makefile's `browser` target, run before pytest):
apt-get installs Debian's chromium when it is missing and make runs as root; otherwise one line says how. Checked
with stand-ins for `id` and `apt-get` on a PATH without chromium (nothing is installed)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _bin(tmp_path: Path, uid: int, apt: bool, chromium: bool) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    if apt:
        (folder / "apt-get").write_text(f"#!/bin/sh\necho \"apt-get $*\" >> {tmp_path / 'apt.log'}\n")
    if chromium:
        (folder / "chromium").write_text("#!/bin/sh\n")
    for f in folder.iterdir():
        f.chmod(0o755)
    return folder


def _browser(tmp_path, **kw) -> tuple[str, list[str]]:
    out = subprocess.run([MAKE, "-s", "-C", str(ROOT), "browser"], capture_output=True, text=True, timeout=60,
                         env={"PATH": str(_bin(tmp_path, **kw))})
    assert out.returncode == 0, out.stderr
    log = tmp_path / "apt.log"
    return out.stdout + out.stderr, log.read_text().splitlines() if log.exists() else []


def test_root_without_chromium_installs_it_with_apt_get(tmp_path):
    text, apt = _browser(tmp_path, uid=0, apt=True, chromium=False)
    assert apt == ["apt-get update -qq", "apt-get install -y -qq chromium"]
    assert "installing Debian's chromium" in text


def test_not_root_prints_the_command_and_installs_nothing(tmp_path):
    text, apt = _browser(tmp_path, uid=1000, apt=True, chromium=False)
    assert apt == []
    assert "sudo apt-get install -y chromium" in text and "skipped" in text


def test_nothing_happens_when_chromium_is_there(tmp_path):
    text, apt = _browser(tmp_path, uid=0, apt=True, chromium=True)
    assert apt == [] and text == ""


def test_make_test_runs_the_browser_step_before_pytest():
    out = subprocess.run([MAKE, "-n", "-C", str(ROOT), "test"], capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    browser = next(i for i, line in enumerate(lines) if "apt-get install -y -qq chromium" in line)
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert browser < pytest_line
