"""No input stores a wrong number or ends in a traceback (issue 19, findings 3, 7 and 8).

* one set-name rule (``oodbench.benchmark.set_name_problem``) for ``metrics --ood``, ``runs import --ood`` and
  ``run --ood/--near-ood/--csid`` (the ad-hoc benchmark path is in ``tests/pipeline/test_set_names.py``);
* score files: a string-typed ``.npy``, a byte-order mark, a blank line between scores;
* argument errors are one line naming the flag the user typed, and the value errors that need no model are
  refused before any model library is imported (checked in a fresh interpreter: ``torch`` not in ``sys.modules``).
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from oodbench.benchmark import RESERVED_SET_NAMES, SET_NAME_MAX, check_set_name, set_name_problem
from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.metrics import MetricInputError, evaluate
from oodbench.results import ResultsStore
from oodbench.scorefiles import read_scores


IMPORT_AS = ["--backbone", "test_clip_tiny", "--benchmark", "adhoc", "--method", "none", "--post", "mcm"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------------------ set names
@pytest.mark.parametrize("name", ["digits 6-9", "digits 0-5 (inverted)", "SUN", "ImageNet-O", "openimage_o",
                                  "iNaturalist", "a+b.c", "Ninco[v2]", "x" * SET_NAME_MAX, "Ärzte"])
def test_set_names_every_benchmark_uses_are_accepted(name):
    assert set_name_problem(name) is None
    assert check_set_name(name) == name


@pytest.mark.parametrize("name, why", [
    ("average", "reserved"), ("Average", "reserved"), ("ID test", "reserved"), ("id_accuracy", "reserved"),
    ("../../x", "'/'"), ("a/b", "'/'"), ("a\\b", "'\\\\\\\\'"), ("C:x", "':'"), ("<b>x</b>", "'<'"),
    ("a\nb", "'\\\\n'"), ("x'y", "\"'\""), (".hidden", "starts with a letter or digit"),
    ("-x", "starts with a letter or digit"), ("", "empty"), (" x", "space"), ("x" * (SET_NAME_MAX + 1), "at most"),
])
def test_reserved_and_path_like_set_names_are_refused(name, why):
    problem = set_name_problem(name)
    assert problem is not None and __import__("re").search(why, problem), problem
    with pytest.raises(UserError, match="^--ood "):
        check_set_name(name, "--ood")


def test_every_registered_benchmark_passes_the_rule():
    from oodbench.benchmark import get_benchmark
    from oodbench.registry import names

    for bench in names("benchmarks"):
        spec = get_benchmark(bench)
        assert all(set_name_problem(s.name) is None for s in (*spec.ood, *spec.ood_val, *spec.csid)), bench
    assert {r.casefold() for r in RESERVED_SET_NAMES} >= {"average", "id test", "id val"}


def test_a_benchmark_spec_with_a_reserved_set_name_is_refused():
    from oodbench.benchmark import BenchmarkSpec, SplitSpec

    with pytest.raises(ValueError, match="reserved"):
        BenchmarkSpec(name="b", description="", id_test=SplitSpec("ID test", "id", group="id"), id_val=None,
                      ood=(SplitSpec("average", "o"),), class_names=("a", "b"))


def test_metrics_never_put_the_mean_in_place_of_a_set():
    rng = np.random.default_rng(0)
    with pytest.raises(MetricInputError, match="average"):
        evaluate(rng.normal(1, 1, 50), {"average": rng.normal(0, 1, 50), "other": rng.normal(0, 1, 50)})


@pytest.fixture
def score_files(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "id.npy", rng.normal(1.0, 1.0, 60))
    np.save(tmp_path / "ood.npy", rng.normal(0.0, 1.0, 50))
    np.save(tmp_path / "ood2.npy", rng.normal(0.5, 1.0, 40))
    return tmp_path


@pytest.mark.parametrize("name", ["average", "../../x", "a/b", "<i>x</i>"])
def test_metrics_and_runs_import_refuse_the_same_names(score_files, capsys, name):
    d = score_files
    assert main(["metrics", "--id", str(d / "id.npy"), "--ood", f"{name}={d / 'ood.npy'}",
                 "--ood", f"other={d / 'ood2.npy'}"]) == 2
    assert _one_line_error(capsys).startswith("oodbench metrics: error: --ood ")
    assert main(["runs", "import", "--id", str(d / "id.npy"), "--ood", f"{name}={d / 'ood.npy'}",
                 *IMPORT_AS,
                 "--results-root", str(d / "runs")]) == 2
    assert "error: --ood " in _one_line_error(capsys)
    assert not (d / "runs").exists()


def test_runs_import_takes_a_benchmark_set_name_with_a_space(score_files, capsys):
    d = score_files
    assert main(["runs", "import", "--id", str(d / "id.npy"), "--ood", f"digits 6-9={d / 'ood.npy'}",
                 *IMPORT_AS,
                 "--results-root", str(d / "runs")]) == 0
    (rec,) = ResultsStore(d / "runs").runs()
    assert set(rec.metrics) == {"digits 6-9", "average"}


# ------------------------------------------------------------------------------------------------ score files
def _ranks_auroc(id_s, ood_s):
    """AUROC by the rank-sum formula (ties counted half), independent of the metric code."""
    id_s, ood_s = np.asarray(id_s, float), np.asarray(ood_s, float)
    wins = (id_s[:, None] > ood_s[None, :]).sum() + 0.5 * (id_s[:, None] == ood_s[None, :]).sum()
    return wins / (id_s.size * ood_s.size)


def test_string_typed_npy_is_a_one_line_error(score_files, capsys):
    d = score_files
    np.save(d / "strings.npy", np.array(["0.1", "0.2", "x"]))
    for argv in (["metrics", "--id", str(d / "strings.npy"), "--ood", f"o={d / 'ood.npy'}"],
                 ["runs", "import", "--id", str(d / "strings.npy"), "--ood", f"o={d / 'ood.npy'}", *IMPORT_AS,
                  "--results-root", str(d / "runs")]):
        assert main(argv) == 2
        assert "not numbers" in _one_line_error(capsys)
    assert not (d / "runs").exists()


def test_csv_with_a_byte_order_mark_reads_its_header(tmp_path, capsys):
    values = np.round(np.random.default_rng(2).normal(size=30), 6)
    (tmp_path / "bom.csv").write_text("score\n" + "\n".join(map(str, values)) + "\n", encoding="utf-8-sig")
    assert (tmp_path / "bom.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    np.testing.assert_array_equal(read_scores(tmp_path / "bom.csv", column="score"), values)
    (tmp_path / "plain.csv").write_text("score\n" + "\n".join(map(str, values[:20] - 1)) + "\n")
    # without --column the two files' headers agree once the mark is dropped
    assert main(["metrics", "--id", str(tmp_path / "bom.csv"), "--ood", f"o={tmp_path / 'plain.csv'}",
                 "--out", str(tmp_path / "m.json")]) == 0
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["metrics"]["o"]["auroc"] == pytest.approx(_ranks_auroc(values, values[:20] - 1), abs=1e-12)


def test_blank_lines_are_fine_at_the_end_and_an_error_between_scores(tmp_path):
    values = [f"{v / 10:.1f}" for v in range(200)]
    (tmp_path / "end.csv").write_text("score\n" + "\n".join(values) + "\n\n\n")
    assert read_scores(tmp_path / "end.csv").size == 200
    (tmp_path / "gap.csv").write_text("score\n" + "\n".join(values[:100]) + "\n\n" + "\n".join(values[100:]) + "\n")
    with pytest.raises(UserError, match=r"gap\.csv:102: blank line between scores"):
        read_scores(tmp_path / "gap.csv")


# ------------------------------------------------------------------------------- one-line, early refusals
@pytest.mark.parametrize("argv, message", [
    (["run", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["run", "--extract-batch-size", "0"], "argument --extract-batch-size: must be >= 1, got 0"),
    (["search", "--method", "setar", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["finetune", "--method", "lora", "--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["run", "--method", "lora", "--lr", "-1"], "argument --lr: must be a finite number > 0, got -1"),
    (["run", "--workers", "-1"], "argument --workers: must be >= 0, got -1"),
    (["runs", "list", "--limit", "0"], "argument --limit: must be >= 1, got 0"),
    (["run", "--no-such-option"], "oodbench run: error: unrecognized arguments: --no-such-option"),
    (["runs", "list", "--zzz"], "oodbench runs list: error: unrecognized arguments: --zzz"),
])
def test_argument_errors_are_one_line_naming_the_flag_typed(capsys, argv, message):
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert message in err and "--help" in err and "usage" not in err.lower()


# Each command line must end with exit code 2 and one error line, with no model library imported.
EARLY = """
    import json, sys
    from oodbench.cli import main

    report = []
    for argv in json.loads(sys.argv[1]):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        report.append([argv, code, [m for m in ("torch", "open_clip", "timm") if m in sys.modules]])
    print("REPORT" + json.dumps(report))
"""


def test_value_errors_are_refused_before_torch_is_imported(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    commands = [
        ["run", "--post", "nosuch"],
        ["run", "--results-root", str(afile)],
        ["run", "--cache-dir", str(afile)],
        ["run", "--method", "nosuch"],
        ["run", "--seeds", "x"],
        ["run", "--param", "foo"],
        ["run", "--plan", "p.json"],
        ["run", "--ood", f"average={tmp_path}", "--id-test", str(tmp_path), "--classes", "imagenet1k"],
        ["run", "--near-ood", f"a/b={tmp_path}", "--id-test", str(tmp_path), "--classes", "imagenet1k"],
        ["search", "--method", "setar", "--results-root", str(afile)],
        ["search", "--method", "setar", "--out", str(afile / "plan")],
        ["finetune", "--method", "lora", "--out", str(afile)],
        ["sweep", "--post", "nosuch"],
        ["sweep", "--cache-dir", str(afile)],
    ]
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(EARLY), json.dumps(commands)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.rsplit("REPORT", 1)[1])
    assert [r[1] for r in report] == [2] * len(commands), report
    assert [r for r in report if r[2]] == [], "a model library was imported before the refusal"
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == len(commands) and all(": error: " in e for e in errors), errors
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_score_plugin_without_its_own_init_has_no_hyperparameters():
    from oodbench.postprocessors.base import Postprocessor

    class NoInit(Postprocessor):
        def score(self, features):
            return np.asarray(features["logits"]).max(axis=1)

    post = NoInit()
    assert post.get_params() == {} and repr(post) == "NoInit()"
    with pytest.raises(ValueError, match="invalid parameter 'x'"):
        post.set_params(x=1)

    class Star(Postprocessor):
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    with pytest.raises(UserError, match="keyword arguments with defaults"):
        Star().get_params()
