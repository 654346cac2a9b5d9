"""The progress helper: a rich bar with ETA on a terminal, plain log lines otherwise, nothing when quiet; and
its users (feature extraction, NegLabel mining, the SeTAR search) showing it."""

import io
import re

import numpy as np
import pytest
from rich.console import Console
from rich.text import Text

from oodbench import console as C


@pytest.fixture
def info_logging(capsys):
    """Logging as the CLI sets it up at the default verbosity; yields a function returning new stderr text."""
    C.setup_logging(0)
    capsys.readouterr()
    yield lambda: capsys.readouterr().err
    C.setup_logging(-1)


@pytest.fixture
def fake_clock(monkeypatch):
    """``time.perf_counter`` of the console module under the test's control."""
    now = [1000.0]
    monkeypatch.setattr(C.time, "perf_counter", lambda: now[0])
    return now


def _plain(text: str) -> str:
    return Text.from_ansi(text).plain


# ------------------------------------------------------------------------------------------------ modes
def test_mode_follows_terminal_quiet_logging_and_environment(monkeypatch, info_logging):
    monkeypatch.delenv(C.PROGRESS_ENV, raising=False)
    tty = Console(file=io.StringIO(), force_terminal=True)
    pipe = Console(file=io.StringIO(), force_terminal=False)
    assert C.progress_mode(console=tty) == "bar"
    assert C.progress_mode(console=pipe) == "lines"
    assert C.progress_mode(quiet=True, console=tty) == "off"
    monkeypatch.setenv(C.PROGRESS_ENV, "lines")
    assert C.progress_mode(console=tty) == "lines"
    monkeypatch.setenv(C.PROGRESS_ENV, "off")
    assert C.progress_mode(console=tty) == "off"
    monkeypatch.delenv(C.PROGRESS_ENV)
    C.setup_logging(-1)  # -q
    assert C.progress_mode(console=tty) == "off"
    with pytest.raises(ValueError, match="progress mode"):
        C.progress(mode="fancy")


def test_bar_mode_draws_a_bar_with_eta_and_info():
    buf = io.StringIO()
    tty = Console(file=buf, force_terminal=True, width=140)
    with C.progress(mode="bar", console=tty, transient=False) as prog:
        task = prog.add_task("features ID test", total=200)
        for _ in range(8):
            prog.advance(task, 25)
        prog.update(task, info="loss 0.1234")
    text = _plain(buf.getvalue())
    last = [ln for ln in text.splitlines() if ln.strip()][-1]
    assert last.startswith("features ID test") and "200/200" in last and "100%" in last
    assert "eta" in last and "loss 0.1234" in last and "━" in last


def test_nested_bars_share_one_display():
    buf = io.StringIO()
    tty = Console(file=buf, force_terminal=True, width=140)
    with C.progress(mode="bar", console=tty, transient=False) as outer:
        a = outer.add_task("outer", total=2)
        with C.progress(mode="bar", console=tty, transient=False) as inner:  # no "only one live display" error
            b = inner.add_task("inner", total=3)
            inner.advance(b, 3)
        outer.advance(a, 2)
    final = _plain(buf.getvalue()).splitlines()[-3:]
    assert any(ln.startswith("outer") and "2/2" in ln for ln in final)
    assert any(ln.startswith("inner") and "3/3" in ln for ln in final)
    assert C._BarProgress._shared is None  # the display is stopped with the last block


def test_lines_mode_logs_every_ten_percent_and_at_the_end(info_logging, fake_clock):
    with C.progress(mode="lines") as prog:
        task = prog.add_task("features ID test", total=1000)
        for _ in range(20):  # 5% every 3 s
            fake_clock[0] += 3.0
            prog.advance(task, 50)
    lines = [ln.strip() for ln in _plain(info_logging()).splitlines() if ln.strip()]
    assert len(lines) == 10, lines  # 10%, 20%, ..., 90% and the final line
    first = lines[0]
    assert re.search(r"features ID test: 100/1,000 \(10%\), 0:06 elapsed, eta 0:54$", first), first
    assert re.search(r"features ID test: 1,000/1,000 done in 1:00$", lines[-1]), lines[-1]


def test_lines_mode_is_rate_limited_and_reports_slow_work(info_logging, fake_clock):
    with C.progress(mode="lines") as prog:
        fast = prog.add_task("fast", total=100)
        for _ in range(100):  # 100 units in 1 s: only the final line
            fake_clock[0] += 0.01
            prog.advance(fast)
        slow = prog.add_task("slow", total=None)  # unknown total: a line every 30 s, and one at the end
        for _ in range(7):
            fake_clock[0] += 10.0
            prog.update(slow, advance=1, info="loss 0.5")
    lines = [ln.strip() for ln in _plain(info_logging()).splitlines() if ln.strip()]
    assert lines[0].endswith("fast: 100/100 done in 0:01")
    assert [ln for ln in lines[1:] if ln.startswith("INFO")] == [
        "INFO     slow: 3, 0:30 elapsed, loss 0.5", "INFO     slow: 6, 1:00 elapsed, loss 0.5",
        "INFO     slow: 7 done in 1:10, loss 0.5"]


def test_off_mode_and_quiet_print_nothing(info_logging, monkeypatch):
    monkeypatch.setenv(C.PROGRESS_ENV, "lines")
    for kwargs in ({"mode": "off"}, {"quiet": True}):
        with C.progress(**kwargs) as prog:
            task = prog.add_task("nothing", total=3)
            prog.advance(task, 3)
    assert list(C.track(range(4), "tracked", quiet=True)) == [0, 1, 2, 3]
    assert info_logging() == ""


def test_track_iterates_with_a_final_line(info_logging, monkeypatch):
    monkeypatch.setenv(C.PROGRESS_ENV, "lines")
    assert list(C.track(["a", "b", "c"], "letters")) == ["a", "b", "c"]
    assert re.search(r"letters: 3/3 done in 0:00", _plain(info_logging()))


# --------------------------------------------------------------------------------------------- the users
def test_neglabel_mining_shows_progress(info_logging, monkeypatch):
    from oodbench.postprocessors import neglabel

    class Encoder:
        calls = 0

        def encode_text(self, prompts):
            Encoder.calls += 1
            rng = np.random.default_rng(len(prompts))
            return rng.standard_normal((len(prompts), 8)).astype(np.float32)

    monkeypatch.setenv(C.PROGRESS_ENV, "lines")
    prompts = [f"the nice word{i}" for i in range(2 * neglabel.ENCODE_BATCH + 5)]
    emb = neglabel.encode_normalized(Encoder(), prompts, "corpus prompts")
    assert emb.shape == (len(prompts), 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-6)
    text = _plain(info_logging())
    assert re.search(r"neglabel: encoding corpus prompts: 2,053/2,053 done in", text), text
    neglabel.encode_normalized(Encoder(), prompts[:10], "ID prompts")  # one batch: no progress line
    assert "ID prompts" not in _plain(info_logging())


def test_feature_extraction_shows_progress_per_split(info_logging, monkeypatch):
    from oodbench.backbones import create_backbone
    from oodbench.data.sources import ArraySource
    from oodbench.features.extract import extract_features

    monkeypatch.setenv(C.PROGRESS_ENV, "lines")
    rng = np.random.default_rng(0)
    source = ArraySource("tiny split", rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8), np.zeros(12, np.int64))
    feats = extract_features(create_backbone("test_clip_tiny"), source, ["image"], batch_size=5)
    assert feats["image"].shape[0] == 12
    assert re.search(r"features tiny split: 12/12 done in", _plain(info_logging()))


def test_search_shows_progress(info_logging, monkeypatch):
    import torch

    from oodbench.backbones import create_backbone
    from oodbench.methods.setar.search import SearchConfig, search

    monkeypatch.setenv(C.PROGRESS_ENV, "lines")
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(8, 3, 32, 32, generator=g), torch.arange(8) % 4
    search(create_backbone("test_clip_tiny"), images, labels, ["a", "b", "c", "d"],
           config=SearchConfig(ratios=(0.0, 0.5), top_k=1, batch_size=8))
    text = _plain(info_logging())
    assert re.search(r"SeTAR setar-s step 3 text W_up 0: 8/8 done in", text), text
