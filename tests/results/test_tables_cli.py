"""`oodbench tables`: the dry run lists what is missing and the exact commands (each parses into the runs it
stands for), writes nothing; selection of tables; one-line errors."""

import shlex
from types import SimpleNamespace

import pytest

from oodbench.cli import build_parser, main
from oodbench.cli.run_cmd import settings_from_args
from oodbench.paper import select
from oodbench.papers.digits import digits_experiments
from oodbench.papers.setar.experiments import paper_experiments
from oodbench.orchestration.sweep import group_specs
from oodbench.reporting.tables import RunIndex, matches


def test_dry_run_without_data_lists_commands_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "tables"
    rc = main(["tables", "--paper", "arxiv", "--table", "near-ood", "--dry-run", "--out", str(out),
               "--results-root", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "0 of 22 runs the tables need are stored" in text
    assert "cannot run 11 group(s)" in text and "oodbench data layout ssb_hard" in text
    assert ("oodbench run --benchmark ssb_hard --data-root DATA --backbone clip_vit_b16 --post mcm,glmcm --method "
            "setar-ft --seed 4") in text
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_unknown_table_is_a_one_line_error(tmp_path, capsys):
    assert main(["tables", "--table", "nosuch", "--results-root", str(tmp_path / "r")]) == 2
    assert "unknown table 'nosuch'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_select_by_id_and_paper_number():
    exps = paper_experiments("arxiv")
    assert select(exps, "modality")[0].id == "modality"
    assert select(exps, "15")[0].id == "modality"  # arXiv Table 15 is the modality detail
    assert select(exps, "table22")[0].id == "resnet50"
    assert select(paper_experiments("neurips"), "15")[0].id == "backbones"
    assert len(select(exps, "all")) == len(exps)


@pytest.mark.parametrize("version", ["neurips", "arxiv", "digits"])
def test_every_printed_command_parses_into_its_runs(version):
    """Each `oodbench run ...` the dry run prints, parsed by the real parser, gives the runs it stands for."""
    exps = digits_experiments() if version == "digits" else paper_experiments(version)
    specs = [r for e in exps for r in e.runs() if not r.blocked and r.step is None]
    groups = group_specs(specs)
    assert groups
    for g in groups:
        argv = shlex.split(g.command("DATA" if g.first.benchmark != "digits" else None))
        assert argv[:2] == ["oodbench", "run"]
        args = build_parser(argv[1:], full=False).parse_args(argv[1:])
        s = settings_from_args(args, None, SimpleNamespace(name=args.backbone))
        spec = g.first
        assert args.benchmark == spec.benchmark and args.backbone == spec.backbone
        assert set(s.postprocessors) == set(g.posts)
        assert s.methods == tuple(dict.fromkeys(("none", spec.method)))
        assert {k: v for k, v in s.params.items() if v} == g.params
        assert s.seed == (spec.seed if spec.seed is not None else 0)
        # the run this command stores matches the spec (options as the CLI passes them, the seed included)
        opts = s.method_options.get(spec.method, {})
        for post_spec in g.specs:
            record = SimpleNamespace(
                benchmark=spec.benchmark, backbone={"name": spec.backbone, "pretrained": None}, method=spec.method,
                postprocessor={"name": post_spec.post, "params": _full(post_spec.post, s.params.get(post_spec.post)),
                               "aps": None},
                precision="fp32", seed=s.seed, plan={"name": spec.method, "seed": opts.get("seed", 5),
                                                     "method": {"name": spec.method, "options": opts}})
            assert matches(record, post_spec), (g.command(), post_spec)


def _full(post, params):
    from oodbench.registry import get

    return get("postprocessors", post)().set_params(**(params or {})).get_params()


def test_digits_dry_run_lists_every_missing_run(tmp_path, capsys):
    rc = main(["tables", "--benchmark", "digits", "--table", "prune", "--dry-run",
               "--results-root", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "0 of 10 runs the tables need are stored" in text and "would run: 5 group(s)" in text
    for cmd in ("--method setar --prune principal", "--method setar --prune random --seed 3",
                "--method setar --prune random --seed 5", "--post mcm,glmcm --method setar\n"):
        assert cmd in text
    assert not (tmp_path / "runs").exists()
    assert RunIndex([]).find(digits_experiments()[0].runs()[0]) is None
