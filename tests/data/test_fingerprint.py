"""File-list fingerprints: content, folder and list changes always show; remembered digests are safe to reuse."""

import hashlib
import os
import pickle
import time

import numpy as np
import pytest
from PIL import Image

from oodbench.data.readers import read_imagefolder


def _tree(root, fmt="bmp", n=3):
    """``root/<a|b>/<i>.<fmt>``: uncompressed images, so a changed pixel keeps the file size."""
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / ("a" if i % 2 else "b") / f"{i}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return root


def _fp(root, **kw):
    """Fingerprint of a freshly read source (nothing memoized in the object)."""
    return read_imagefolder(root, "s", **kw).fingerprint()


def _rewrite_same_size(path, keep_mtime=False):
    """Change one pixel in place (same inode, same size); optionally restore the old modification time."""
    st = os.stat(path)
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB")).copy()
    arr[0, 0, 0] ^= 0xFF
    before = path.read_bytes()
    buf = path.with_suffix(".tmp" + path.suffix)
    Image.fromarray(arr).save(buf)
    data = buf.read_bytes()
    buf.unlink()
    assert len(data) == len(before) and data != before
    with open(path, "r+b") as f:  # in place: same inode
        f.write(data)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_ino == st.st_ino


def _reference_fingerprint(src):
    """Straightforward re-implementation: sha256 of the resolved root and every (path, label, sha256 of bytes)."""
    h = hashlib.sha256(b"oodbench file list v2\n")
    h.update(f"root\t{src.root.resolve()}\n".encode())
    for rel, lab in zip(src.relpaths, src.labels.tolist()):
        h.update(f"{rel}\t{lab}\t{hashlib.sha256((src.root / rel).read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()[:20]


@pytest.mark.parametrize("fmt", ["bmp", "ppm"])
def test_same_size_in_place_replacement_changes_the_fingerprint(tmp_path, fmt):
    root = _tree(tmp_path / "d", fmt)
    first = _fp(root)
    assert _fp(root) == first  # unchanged: same fingerprint
    _rewrite_same_size(root / "b" / f"0.{fmt}")
    assert _fp(root) != first
    assert _fp(root) == _reference_fingerprint(read_imagefolder(root, "s"))


def test_remembered_digests_catch_a_replacement_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    """With every digest remembered (no racy window), a same-size rewrite with the old mtime restored (what
    `cp -p` or `rsync -a` do) still changes the fingerprint: the ctime moved."""
    from oodbench.data import digests as digests_mod

    monkeypatch.setattr(digests_mod, "RACY_SECONDS", 0.0)
    root = _tree(tmp_path / "d")
    first = _fp(root)
    hashed = []
    real = digests_mod._sha256
    monkeypatch.setattr(digests_mod, "_sha256", lambda p: hashed.append(os.path.basename(p)) or real(p))
    assert _fp(root) == first and hashed == []  # all three remembered: no file read
    time.sleep(0.05)  # past the file system's timestamp tick
    _rewrite_same_size(root / "a" / "1.bmp", keep_mtime=True)
    assert _fp(root) != first and hashed == ["1.bmp"]  # only the changed file is read again
    assert _fp(root) == _reference_fingerprint(read_imagefolder(root, "s"))


def test_recently_changed_files_are_not_remembered(tmp_path, monkeypatch):
    from oodbench.data import digests as digests_mod

    root = _tree(tmp_path / "d")  # just written: inside the racy window
    hashed = []
    real = digests_mod._sha256
    monkeypatch.setattr(digests_mod, "_sha256", lambda p: hashed.append(os.path.basename(p)) or real(p))
    _fp(root)
    _fp(root)
    assert len(hashed) == 6  # hashed on every read until they are older than RACY_SECONDS


def test_digest_tables_live_in_the_digest_dir(tmp_path, monkeypatch):
    from oodbench.data import digests as digests_mod

    monkeypatch.setattr(digests_mod, "RACY_SECONDS", 0.0)
    root = _tree(tmp_path / "d")
    src = read_imagefolder(root, "s")
    src.digest_dir = tmp_path / "dig"
    src.fingerprint()
    table = digests_mod.table_path(tmp_path / "dig", root.resolve())
    lines = table.read_text().splitlines()
    assert lines[0].endswith(str(root.resolve())) and len(lines) == 4
    rel, size, *_rest, digest = lines[1].split("\t")
    assert digest == hashlib.sha256((root / rel).read_bytes()).hexdigest() and int(size) == (root / rel).stat().st_size
    # the default table folder is <cache dir>/digests
    assert digests_mod.default_digest_dir() == digests_mod.default_cache_dir() / "digests"
    # a table written for another folder, or unreadable lines, are never used
    hashed = []
    real = digests_mod._sha256
    monkeypatch.setattr(digests_mod, "_sha256", lambda p: hashed.append(os.path.basename(p)) or real(p))
    table.write_text("# oodbench file digests v1\t/some/other/folder\n" + "\n".join(lines[1:]) + "\n")
    again = read_imagefolder(root, "s")
    again.digest_dir = tmp_path / "dig"
    assert again.fingerprint() == _reference_fingerprint(src) and len(hashed) == 3
    table.write_text(lines[0] + "\n" + "\n".join(line[:-3] for line in lines[1:]) + "\n")  # truncated digests
    hashed.clear()
    again = read_imagefolder(root, "s")
    again.digest_dir = tmp_path / "dig"
    assert again.fingerprint() == _reference_fingerprint(src) and len(hashed) == 3


def test_a_second_folder_with_the_same_names_and_sizes_differs(tmp_path):
    a = _tree(tmp_path / "one")
    b = _tree(tmp_path / "two")  # byte-identical copy
    assert all((a / r).read_bytes() == (b / r).read_bytes() for r in read_imagefolder(a, "s").relpaths)
    assert _fp(a) != _fp(b)
    _rewrite_same_size(b / "b" / "0.bmp")  # and with a different pixel, same sizes
    assert _fp(a) != _fp(b)


def test_renamed_file_missing_file_and_labels_change_the_fingerprint(tmp_path):
    root = _tree(tmp_path / "d")
    first = _fp(root)
    os.rename(root / "a" / "1.bmp", root / "a" / "9.bmp")
    renamed = _fp(root)
    assert renamed != first
    assert _fp(root, classes=["b", "a"]) != renamed  # same files, other labels
    src = read_imagefolder(root, "s")
    src.relpaths = [*src.relpaths[:-1], "a/gone.bmp"]
    assert src.fingerprint() != renamed and src.digests()[-1] == "missing"


def test_subsets_and_pickles(tmp_path):
    root = _tree(tmp_path / "d", n=4)
    src = read_imagefolder(root, "s")
    src.fingerprint()
    sub = src.subset([0, 2])
    assert sub.digests() == [src.digests()[0], src.digests()[2]]
    assert sub.fingerprint() == _reference_fingerprint(sub)
    clone = pickle.loads(pickle.dumps(src))  # what a loader worker receives: paths, not digests
    assert clone._digests is None and clone.relpaths == src.relpaths and clone.fingerprint() == src.fingerprint()


def _gradient16():
    return (np.arange(48 * 40).reshape(48, 40) * 34).astype(np.uint16)  # 0 .. 65,246


def test_16_bit_png_gives_the_tensor_of_its_8_bit_version(tmp_path):
    """convert("RGB") clips 16-bit values to 255 (almost all white); the loader scales them, and `data verify`
    accepts the file because it goes through the same conversion."""
    import torch

    from oodbench.data.loader import SourceDataset
    from oodbench.data.verify import check_image_file

    g16 = _gradient16()
    folder = tmp_path / "imgs" / "x"
    folder.mkdir(parents=True)
    Image.fromarray(g16).save(folder / "g16.png")
    Image.fromarray(np.rint(g16 / 257).astype(np.uint8)).save(folder / "g8.png")
    Image.fromarray(g16.astype(np.int32)).save(folder / "g32.tif")  # mode "I"
    Image.fromarray(g16.astype(np.float32) / 65535).save(folder / "gf.tif")  # mode "F", 0..1
    assert Image.open(folder / "g16.png").mode == "I;16" and Image.open(folder / "gf.tif").mode == "F"
    src = read_imagefolder(tmp_path / "imgs", "grad")
    ds = SourceDataset(src, lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float())
    by_name = {src.relpaths[i].split("/")[-1]: ds[i][0] for i in range(len(src))}
    ref = by_name["g8.png"]
    assert ref.shape == (3, 48, 40) and ref.max() == 254
    for name in ("g16.png", "g32.tif", "gf.tif"):
        assert (by_name[name] - ref).abs().max() <= 1, name
        assert check_image_file(folder / name) is None
