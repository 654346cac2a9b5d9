"""Reading score files: formats, columns, orientation, and one-line errors."""

import numpy as np
import pytest

from oodbench.errors import UserError
from oodbench.scorefiles import read_scores


def test_npy_npz_csv_and_orientation(tmp_path):
    v = np.array([0.5, -1.25, 3.0])
    np.save(tmp_path / "a.npy", v)
    np.savez(tmp_path / "b.npz", mcm=v, other=v * 2)
    (tmp_path / "c.csv").write_text("mcm_score,gl_mcm_score\n0.5,1\n-1.25,2\n3.0,3\n")
    (tmp_path / "d.tsv").write_text("x\n0.5\n-1.25\n3\n\n")  # a blank line at the end is fine
    np.testing.assert_array_equal(read_scores(tmp_path / "a.npy"), v)
    np.testing.assert_array_equal(read_scores(tmp_path / "b.npz", "other"), v * 2)
    np.testing.assert_array_equal(read_scores(tmp_path / "c.csv", "mcm_score"), v)
    np.testing.assert_array_equal(read_scores(tmp_path / "c.csv", "mcm_score", higher_is="ood"), -v)
    np.testing.assert_array_equal(read_scores(tmp_path / "d.tsv"), v)


@pytest.mark.parametrize(
    "name, content, column, message",
    [
        ("x.csv", "a,b\n1,2\n", None, "several columns"),
        ("x.csv", "a,b\n1,2\n", "c", "no column 'c'; columns: a, b"),
        ("x.csv", "", None, "empty"),
        ("x.csv", "a\n", None, "no scores"),
        ("x.csv", "a\n1\nfoo\n", None, r"x.csv:3: 'foo' is not a number"),
        ("x.csv", "1.0\n2.0\n", None, "header"),
        ("x.npy", b"not a numpy file", None, "cannot read scores"),
        ("x.parquet", "", None, "unknown score-file format"),
    ],
)
def test_errors_are_one_line(tmp_path, name, content, column, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError, match=message) as info:
        read_scores(path, column)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_orientation(tmp_path):
    with pytest.raises(UserError, match="score file not found"):
        read_scores(tmp_path / "nope.csv")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(UserError, match="--higher-is"):
        read_scores(tmp_path / "a.npy", higher_is="up")
    np.savez(tmp_path / "b.npz", a=np.zeros(2), b=np.ones(2))
    with pytest.raises(UserError, match="several arrays"):
        read_scores(tmp_path / "b.npz")
