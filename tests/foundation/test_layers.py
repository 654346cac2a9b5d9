"""The layer rules of the design (who may import whom), read from the source with ``ast``.

Every ``import`` statement of the package counts — module level, inside functions and under ``TYPE_CHECKING`` —
and so does ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name. A failure lists each
offending ``file:line``.

Rules (design: "Layers"):

* the engine (``oodbench/``) names no plugin: it imports neither ``oodbench.methods``, ``oodbench.postprocessors``
  nor ``oodbench.datasets`` (it asks the registry); ``oodbench/testing`` included;
* ``oodbench.registry`` is the ground floor and imports nothing of the project;
* ``oodbench.metrics`` is pure: the standard library, numpy and scikit-learn only;
* ``oodbench.data`` knows no model: no backbone, feature-extraction or network code;
* ``oodbench.backbones`` know no scores, results or CLI;
* postprocessors never import backbones (they get features, and an encoder object where they embed text);
* methods never import the CLI;
* nobody imports ``oodbench.cli`` except the CLI itself and ``oodbench/__main__``;
* floors (:data:`FLOORS`): every module of the engine and the plugins sits on one floor, and no module imports a
  module of a higher floor (ground < data < models < specs < store < orchestration < reporting < plugins < API < CLI);
* no circles: the import graph of the four trees has no strongly connected component of more than one module;
* names in code: the engine's table, figure, sweep and leaderboard code (:data:`NAMING_SCOPE`) names no registered
  paper, method or score in a string constant (docstrings and comments are prose and do not count), apart from the
  documented :data:`NAMES_ALLOWED`.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Source folder -> the package it installs as (pyproject.toml package-dir).
TREES = {"oodbench": "oodbench", "methods": "oodbench.methods", "postprocessors": "oodbench.postprocessors",
         "datasets": "oodbench.datasets", "papers": "oodbench.papers"}
PLUGINS = ("oodbench.methods", "oodbench.postprocessors", "oodbench.datasets", "oodbench.papers")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the importing file
    target: str  # absolute dotted name imported
    where: str  # "relative/path.py:line"


def modules(root: Path = ROOT, trees: dict[str, str] = TREES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package trees."""
    out: dict[str, Path] = {}
    for folder, package in trees.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _absolute(module: str, path: Path, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = _package_of(module, path).split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _dynamic_target(node: ast.Call) -> str | None:
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called in ("import_module", "__import__") and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
            return arg.value
    return None


def imports_of(module: str, path: Path, known: set[str], root: Path = ROOT) -> list[Import]:
    """Every import of one file, as absolute dotted names (``from pkg import sub`` counts as ``pkg.sub`` when
    ``sub`` is a module of the project)."""
    rel = path.relative_to(root).as_posix()
    out: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        elif isinstance(node, ast.Call):
            found = _dynamic_target(node)
            targets = [found] if found else []
        out += [Import(module, t, f"{rel}:{node.lineno}") for t in dict.fromkeys(targets)]
    return out


def all_imports(root: Path = ROOT, trees: dict[str, str] = TREES) -> list[Import]:
    mods = modules(root, trees)
    known = set(mods)
    return [imp for name, path in mods.items() for imp in imports_of(name, path, known, root)]


def _within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _top(name: str) -> str:
    return name.split(".")[0]


# ---------------------------------------------------------------------------------------------------- rules
#: Engine files allowed to import a plugin package, each with its reason. Empty: the engine names no plugin
#: (the registry loads the built-in plugin packages by name from a table, on the first lookup).
ENGINE_PLUGIN_IMPORTS_ALLOWED: dict[str, str] = {}

METRICS_ALLOWED = {"numpy", "sklearn", "__future__"} | set(sys.stdlib_module_names)
DATA_FORBIDDEN = ("oodbench.backbones", "oodbench.features", "oodbench.method", "oodbench.methods",
                  "oodbench.orchestration", "torch.nn", "timm", "open_clip", "transformers")
BACKBONES_FORBIDDEN = ("oodbench.postprocessors", "oodbench.metrics", "oodbench.scorefiles", "oodbench.results",
                       "oodbench.cli", "oodbench.orchestration", "oodbench.reporting")


def rule_engine_names_no_plugin(imp: Import) -> bool:
    return (_within(imp.importer, "oodbench") and not _within(imp.importer, *PLUGINS)
            and _within(imp.target, *PLUGINS) and imp.where.split(":")[0] not in ENGINE_PLUGIN_IMPORTS_ALLOWED)


def rule_registry_is_the_ground_floor(imp: Import) -> bool:
    return imp.importer == "oodbench.registry" and _within(imp.target, "oodbench")


def rule_metrics_are_pure(imp: Import) -> bool:
    return imp.importer == "oodbench.metrics" and _top(imp.target) not in METRICS_ALLOWED


def rule_data_knows_no_model(imp: Import) -> bool:
    return _within(imp.importer, "oodbench.data") and _within(imp.target, *DATA_FORBIDDEN)


def rule_backbones_know_no_scores_results_or_cli(imp: Import) -> bool:
    return _within(imp.importer, "oodbench.backbones") and _within(imp.target, *BACKBONES_FORBIDDEN)


def rule_postprocessors_never_import_backbones(imp: Import) -> bool:
    return _within(imp.importer, "oodbench.postprocessors") and _within(imp.target, "oodbench.backbones")


def rule_methods_never_import_the_cli(imp: Import) -> bool:
    return _within(imp.importer, "oodbench.methods") and _within(imp.target, "oodbench.cli")


def rule_nobody_imports_the_cli(imp: Import) -> bool:
    return (_within(imp.target, "oodbench.cli") and not _within(imp.importer, "oodbench.cli")
            and imp.importer != "oodbench.__main__")


RULES = [rule_engine_names_no_plugin, rule_registry_is_the_ground_floor, rule_metrics_are_pure,
         rule_data_knows_no_model, rule_backbones_know_no_scores_results_or_cli,
         rule_postprocessors_never_import_backbones, rule_methods_never_import_the_cli, rule_nobody_imports_the_cli]


def violations(rule, imports) -> list[str]:
    return sorted(f"{imp.where}: {imp.importer} imports {imp.target}" for imp in imports if rule(imp))


@functools.lru_cache(maxsize=1)
def project_imports() -> tuple[Import, ...]:
    return tuple(all_imports())


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__.removeprefix("rule_"))
def test_layer_rule(rule):
    found = violations(rule, project_imports())
    assert not found, f"{rule.__name__.removeprefix('rule_')} broken by:\n" + "\n".join(found)


def test_the_allowed_exceptions_exist():
    for rel in ENGINE_PLUGIN_IMPORTS_ALLOWED:
        assert (ROOT / rel).is_file(), f"stale entry in ENGINE_PLUGIN_IMPORTS_ALLOWED: {rel}"


# ------------------------------------------------------------------------------------- the scanner itself
def test_scanner_sees_the_project():
    """Sanity: the scan covers the four trees and resolves imports the project is known to make."""
    mods = modules()
    assert {"oodbench.registry", "oodbench.cli", "oodbench.methods.setar.modifier",
            "oodbench.postprocessors.mcm", "oodbench.datasets"} <= set(mods)
    targets = {(i.importer, i.target) for i in all_imports()}
    assert ("oodbench.methods.setar.modifier", "oodbench.methods.setar.plan") in targets  # from .plan import ...
    assert ("oodbench.methods.setar.method", "oodbench.methods.setar.config") in targets  # from .config import
    assert ("oodbench.postprocessors.base", "oodbench.features") in targets


def test_scanner_finds_every_kind_of_import_with_file_and_line(tmp_path):
    """A planted tree breaks each rule once; every break is reported at its file:line."""
    files = {
        "oodbench/__init__.py": "",
        "oodbench/registry.py": "import json\n\n\ndef f():\n    from oodbench import errors\n",
        "oodbench/errors.py": "",
        "oodbench/metrics.py": "import numpy as np\nfrom sklearn import metrics\nimport torch\n",
        "oodbench/data/__init__.py": "",
        "oodbench/data/loader.py": "import torch.utils.data\nfrom ..backbones.base import Backbone\n",
        "oodbench/backbones/__init__.py": "",
        "oodbench/backbones/base.py": "from oodbench.results import store\n",
        "oodbench/results/__init__.py": "",
        "oodbench/results/store.py": "",
        "oodbench/pipeline.py": ("import importlib\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                 "    from oodbench import methods\nm = importlib.import_module('oodbench.datasets.x')\n"),
        "oodbench/cli/__init__.py": "from . import run\n",
        "oodbench/cli/run.py": "from oodbench.postprocessors import mcm\n",
        "oodbench/__main__.py": "from oodbench.cli import main\n",
        "methods/__init__.py": "from .setar import plan\n",
        "methods/setar/__init__.py": "",
        "methods/setar/plan.py": "from oodbench.cli.run import x\n",
        "postprocessors/__init__.py": "",
        "postprocessors/mcm.py": "import oodbench.backbones.base as b\n",
        "datasets/__init__.py": "",
        "datasets/x.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    imports = all_imports(tmp_path)
    found = {rule.__name__: violations(rule, imports) for rule in RULES}
    assert found == {
        "rule_engine_names_no_plugin": [
            "oodbench/cli/run.py:1: oodbench.cli.run imports oodbench.postprocessors.mcm",
            "oodbench/pipeline.py:4: oodbench.pipeline imports oodbench.methods",
            "oodbench/pipeline.py:5: oodbench.pipeline imports oodbench.datasets.x",
        ],
        "rule_registry_is_the_ground_floor": ["oodbench/registry.py:5: oodbench.registry imports oodbench.errors"],
        "rule_metrics_are_pure": ["oodbench/metrics.py:3: oodbench.metrics imports torch"],
        "rule_data_knows_no_model": ["oodbench/data/loader.py:2: oodbench.data.loader imports oodbench.backbones.base"],
        "rule_backbones_know_no_scores_results_or_cli": [
            "oodbench/backbones/base.py:1: oodbench.backbones.base imports oodbench.results.store"],
        "rule_postprocessors_never_import_backbones": [
            "postprocessors/mcm.py:1: oodbench.postprocessors.mcm imports oodbench.backbones.base"],
        "rule_methods_never_import_the_cli": [
            "methods/setar/plan.py:1: oodbench.methods.setar.plan imports oodbench.cli.run"],
        "rule_nobody_imports_the_cli": [
            "methods/setar/plan.py:1: oodbench.methods.setar.plan imports oodbench.cli.run"],
    }



# ------------------------------------------------------------------------------------------------------ floors
#: The floors of the house, lowest first: (name, module prefixes). A module sits on the floor of its longest
#: matching prefix; it may import its own floor and the floors below, never a higher one.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("oodbench.registry", "oodbench.errors", "oodbench.atomic", "oodbench.hashing", "oodbench.options",
                "oodbench.runtime", "oodbench.version", "oodbench.console", "oodbench.manifest", "oodbench.metrics",
                "oodbench.scorefiles", "oodbench.distributed", "oodbench.provenance", "oodbench.threads")),
    ("data", ("oodbench.data", "oodbench.benchmark")),
    ("models", ("oodbench.backbones", "oodbench.features", "oodbench.cache", "oodbench.method", "oodbench.classify",
                "oodbench.aps", "oodbench.stream")),
    ("specs", ("oodbench.paper",)),
    ("store", ("oodbench.results",)),
    ("orchestration", ("oodbench.orchestration",)),
    ("reporting", ("oodbench.reporting",)),
    ("plugins", ("oodbench.methods", "oodbench.postprocessors", "oodbench.datasets", "oodbench.papers",
                 "oodbench.testing")),
    ("api", ("oodbench.api",)),  # and the package itself (oodbench/__init__.py), see floor_of
    ("cli", ("oodbench.cli", "oodbench.__main__")),
)


def floor_of(module: str, floors=FLOORS) -> int | None:
    """Index in ``floors`` of the module's floor (its longest matching prefix), None when none matches (a new
    module must be given a floor). The package ``oodbench`` itself (its lazy ``oodbench.run`` ...) is the API's."""
    if module == "oodbench":
        return next((i for i, (name, _) in enumerate(floors) if name == "api"), None)
    best: tuple[int, int] | None = None
    for i, (_, prefixes) in enumerate(floors):
        for p in prefixes:
            if _within(module, p) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def _owner(target: str, known: set[str]) -> str | None:
    """The project module an import names (``pkg.mod.attr`` -> ``pkg.mod``), None for a third-party one."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def floor_violations(imports, known: set[str], floors=FLOORS) -> list[str]:
    out = []
    for imp in imports:
        target = _owner(imp.target, known)
        if target is None:
            continue
        a, b = floor_of(imp.importer, floors), floor_of(target, floors)
        if a is not None and b is not None and b > a:
            out.append(f"{imp.where}: {imp.importer} ({floors[a][0]}) imports {target} ({floors[b][0]})")
    return sorted(out)


def test_every_module_has_a_floor():
    missing = sorted(m for m in modules() if floor_of(m) is None)
    assert not missing, "add to FLOORS: " + ", ".join(missing)


def test_no_floor_imports_a_higher_one():
    found = floor_violations(project_imports(), set(modules()))
    assert not found, "a lower floor imports a higher one:\n" + "\n".join(found)


def test_floor_rule_finds_an_upward_import(tmp_path):
    """A planted tree: the store importing reporting is reported at its file:line; reporting importing the store
    (downward) is not."""
    files = {"oodbench/__init__.py": "", "oodbench/results/__init__.py": "", "oodbench/reporting/__init__.py": "",
             "oodbench/results/store.py": "import json\n\n\ndef f():\n    from oodbench.reporting import tables\n",
             "oodbench/reporting/tables.py": "from oodbench.results.store import f\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    trees = {"oodbench": "oodbench"}
    found = floor_violations(all_imports(tmp_path, trees), set(modules(tmp_path, trees)))
    assert found == ["oodbench/results/store.py:5: oodbench.results.store (store) imports oodbench.reporting.tables "
                     "(reporting)"]


# ----------------------------------------------------------------------------------------------------- circles
def import_graph(imports, known: set[str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in imports:
        target = _owner(imp.target, known)
        if target is not None and target != imp.importer:
            graph[imp.importer].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; components of one module left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def test_no_import_circles():
    """Every import counts (module level, in functions, under TYPE_CHECKING): no two modules reach each other."""
    known = set(modules())
    circles = strongly_connected(import_graph(project_imports(), known))
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_circle_finder_against_a_hand_made_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"g"}, "h": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["e", "f"]]
    assert strongly_connected({"x": {"y"}, "y": set()}) == []


# ------------------------------------------------------------------------------------------------ names in code
#: Engine code that must name no paper, method or score: tables, figures, leaderboard, plots, sweeps, the specs.
NAMING_SCOPE = ("oodbench/reporting", "oodbench/orchestration", "oodbench/paper.py")
#: Registered names that may appear as string constants there, each with its reason.
NAMES_ALLOWED = {
    "none": "the vanilla method's registered name is the engine's word for 'no method' (RunSpec.method's default, "
            "the pipeline's baseline) and a plan hash of the vanilla model",
}
NAMED_KINDS = ("papers", "methods", "postprocessors")


def registered_names() -> dict[str, str]:
    """Every name and alias of a built-in paper, method or score (from the manifest) -> ``"kind name"``."""
    from oodbench.manifest import BUILTINS

    out = {}
    for kind, name, _target, _summary, aliases in BUILTINS:
        if kind in NAMED_KINDS:
            for n in (name, *aliases):
                out[n.strip().lower()] = f"{kind[:-1]} {name}"
    return out


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def names_in_code(root: Path, scope=NAMING_SCOPE, names: dict[str, str] | None = None,
                  allowed=NAMES_ALLOWED) -> list[str]:
    """``file:line: 'constant' (kind name)`` for every string constant of the files in ``scope`` that is (case and
    surrounding spaces aside) a registered name, docstrings left out."""
    names = registered_names() if names is None else names
    files: list[Path] = []
    for rel in scope:
        path = root / rel
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
    out = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                key = node.value.strip().lower()
                if key in names and key not in allowed:
                    out.append(f"{path.relative_to(root).as_posix()}:{node.lineno}: {node.value!r} ({names[key]})")
    return sorted(out)


def test_engine_code_names_no_paper_method_or_score():
    found = names_in_code(ROOT)
    assert not found, ("the engine names a plugin (ask the registry / the method or paper contract instead):\n"
                       + "\n".join(found))


def test_names_allowed_are_registered():
    names = registered_names()
    assert all(n in names for n in NAMES_ALLOWED), "stale entry in NAMES_ALLOWED"
    assert {"setar", "neurips", "neglabel", "digits", "mcm", "lora"} <= set(names)  # the scan sees the manifest


def test_names_scan_fails_on_an_engine_module_that_names_a_paper(tmp_path):
    """A planted reporting module that picks a paper by name (and a docstring that only mentions one) is caught at
    the constant's line; the same module outside the scope is not scanned."""
    planted = tmp_path / "oodbench" / "reporting" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text('"""Renders SeTAR\'s tables (a docstring: prose)."""\n\n\n'
                       'def heading(version):\n'
                       '    if version == "neurips":\n'
                       '        return "SeTAR"\n'
                       '    return version\n', encoding="utf-8")
    assert names_in_code(tmp_path) == [
        "oodbench/reporting/planted.py:5: 'neurips' (paper setar)",
        "oodbench/reporting/planted.py:6: 'SeTAR' (paper setar)",
    ]
    assert names_in_code(tmp_path, scope=("oodbench/results",)) == []
