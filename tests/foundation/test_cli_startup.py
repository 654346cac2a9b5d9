"""The CLI answers at once: `--help` (top level and every subcommand), argument errors, `oodbench list` and
`oodbench data layout` import no model library; the lazy registry manifest says exactly what the modules
register; a user error is the only line on stderr, whatever libraries log before it.

Imports are checked in a fresh interpreter (the test process itself has torch loaded by conftest).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from oodbench import registry as R

HEAVY = ("torch", "torchvision", "timm", "open_clip", "transformers", "sklearn")


def _python(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout)


# Runs each command line through `oodbench.cli.main` in one interpreter and reports, per command, the heavy
# modules loaded after it (a module loaded by one command stays loaded: the first culprit is the one to fix).
PROBE = """
    import json, sys
    from oodbench.cli import build_parser, main

    HEAVY = {heavy!r}

    def paths(parser, prefix=()):
        for action in parser._actions:
            for name, sub in getattr(action, "choices", None).items() if hasattr(action, "_name_parser_map") else ():
                yield (*prefix, name)
                yield from paths(sub, (*prefix, name))

    commands = [["--help"], ["bogus"], ["run", "--no-such-option"], ["search", "--ratios"], ["list"],
                ["list", "nope"], ["data", "layout"], ["data", "layout", "digits"]]
    commands += [["list", kind] for kind in {kinds!r}]
    commands += [[*p, "--help"] for p in paths(build_parser())]  # the full parser: every subcommand
    report = []
    for argv in commands:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        report.append({{"argv": argv, "code": code, "heavy": [m for m in HEAVY if m in sys.modules]}})
    print("REPORT" + json.dumps(report))
"""


def test_help_list_layout_and_argument_errors_import_no_model_library():
    proc = _python(PROBE.format(heavy=HEAVY, kinds=R.KINDS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.rsplit("REPORT", 1)[1])
    argvs = [" ".join(r["argv"]) for r in report]
    for needed in ("run --help", "search --help", "finetune --help", "data verify --help", "runs list --help",
                   "list methods", "data layout digits"):
        assert needed in argvs, f"not probed: {needed}"
    first = next((r for r in report if r["heavy"]), None)
    assert first is None, f"`oodbench {' '.join(first['argv'])}` imported {', '.join(first['heavy'])}"
    codes = {" ".join(r["argv"]): r["code"] for r in report}
    assert codes["--help"] == 0 and codes["list"] == 0 and codes["data layout"] == 0
    assert codes["bogus"] == 2 and codes["run --no-such-option"] == 2 and codes["search --ratios"] == 2
    assert codes["list nope"] == 2


def test_oodbench_list_imports_no_model_library_by_importtime():
    """`python -X importtime -m oodbench.cli list postprocessors`, as a user runs it: no heavy module imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "oodbench.cli", "list", "postprocessors"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NegLabel (Jiang et al., ICLR 2024)" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "oodbench.registry" in imported and "rich" in imported  # (importlib.import_module is not listed)
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


# ------------------------------------------------------------------------------------------- the manifest
DUMP = """
    import importlib, json, pkgutil
    from oodbench import registry as R

    for pkg in ("oodbench.backbones", "oodbench.methods", "oodbench.postprocessors", "oodbench.datasets",
                "oodbench.papers"):
        importlib.import_module(pkg)
        for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
    assert "oodbench.manifest" not in __import__("sys").modules, "a module import loaded the manifest"
    out = {kind: {n: [f"{e.obj.__module__}:{e.obj.__qualname__}", sorted(e.aliases), e.summary]
                  for n, e in reg._entries.items()} for kind, reg in R.REGISTRIES.items()}
    print("DUMP" + json.dumps(out))
"""


def test_manifest_equals_what_importing_the_modules_registers():
    """Every module of the plugin packages imported (decorators run, no manifest): the same kinds, names,
    objects, aliases and summaries as oodbench.manifest lists."""
    from oodbench.manifest import BUILTINS

    proc = _python(DUMP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    registered = json.loads(proc.stdout.rsplit("DUMP", 1)[1])
    listed: dict = {k: {} for k in R.KINDS}
    for kind, name, target, summary, aliases in BUILTINS:
        assert name not in listed[kind], f"{kind} '{name}' listed twice"
        listed[kind][name] = [target, sorted(aliases), summary]
    for kind in R.KINDS:
        assert listed[kind] == registered[kind], kind


def test_lookup_of_a_lazy_entry_imports_its_module():
    """In a fresh interpreter: `list` shows summaries without importing; `get` imports and returns the class."""
    proc = _python("""
        import sys
        from oodbench.registry import get, registry
        entry = registry("postprocessors").entries("mcm")[0]
        assert entry.summary.startswith("MCM (Ming et al.") and not entry.loaded
        assert "oodbench.postprocessors.mcm" not in sys.modules
        cls = get("postprocessors", "MCM".lower())
        assert cls.__module__ == "oodbench.postprocessors.mcm" and cls.registry_name == "mcm"
        assert get("postprocessors", "gl-mcm").registry_name == "glmcm"  # alias from the manifest
        assert registry("postprocessors").entries("mcm")[0].obj is cls
        print("OK")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr[-2000:]


def test_lazy_registration_merges_with_the_decorator_and_keeps_names_unique(tmp_path, monkeypatch):
    (tmp_path / "lazy_mod.py").write_text(textwrap.dedent('''
        from oodbench.registry import register

        @register("postprocessors", "lazy_score", aliases=("lazy",))
        class LazyScore:
            """Lazy score: registered by its module."""
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = R.Registry("postprocessors")
    reg._builtins_loaded = reg._entry_points_scanned = True
    monkeypatch.setitem(R.REGISTRIES, "postprocessors", reg)
    R.register_lazy("postprocessors", "lazy_score", "lazy_mod:LazyScore", summary="Lazy score: listed.",
                    aliases=("lazy",))
    assert reg.entries()[0].summary == "Lazy score: listed." and "lazy_mod" not in sys.modules
    with pytest.raises(R.RegistryError, match="already registered by builtin .lazy_mod:LazyScore"):
        reg.add("lazy", object())  # an alias of a lazy entry is taken too
    cls = reg.get("LAZY")
    assert cls.__name__ == "LazyScore" and cls.registry_name == "lazy_score" and reg.names() == ["lazy_score"]
    assert reg.entries()[0].summary == "Lazy score: registered by its module."
    with pytest.raises(R.RegistryError, match="already registered"):
        R.register_lazy("postprocessors", "lazy_score", "other_mod:Other")  # another object under the name
    with pytest.raises(R.RegistryError, match="module:attribute"):
        R.register_lazy("postprocessors", "bad", "no_colon")


# ----------------------------------------------------------------------------------- one line on error
NOISY_PLUGIN = '''
import logging

logging.error("library noise before the error")        # the root logger, as open_clip logs
logging.getLogger("somelib").warning("somelib noise")
'''


@pytest.mark.parametrize("verbose, noise", [((), False), (("-v",), True)])
def test_a_user_error_is_the_only_line_on_stderr(tmp_path, verbose, noise):
    plugin = tmp_path / "noisy.py"
    plugin.write_text(NOISY_PLUGIN)
    proc = subprocess.run([sys.executable, "-m", "oodbench.cli", "list", "nope", "--plugin", str(plugin), *verbose],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("oodbench list: error: unknown registry kind 'nope'")
    assert "WARNING:root" not in proc.stderr and "ERROR:root" not in proc.stderr
    if noise:  # -v: the library records are shown, through our handler, with the logger's name
        assert "root: library noise before the error" in proc.stderr and "somelib: somelib noise" in proc.stderr
    else:
        assert lines == [lines[-1]], proc.stderr
