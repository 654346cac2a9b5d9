"""Every package folder is listed in pyproject.toml, so a built wheel contains it."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {"oodbench": "oodbench", "methods": "oodbench.methods", "postprocessors": "oodbench.postprocessors",
           "datasets": "oodbench.datasets", "papers": "oodbench.papers"}


def test_all_packages_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for folder, package in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    assert found - listed == set(), f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert cfg["package-dir"] == {v: k for k, v in MAPPING.items()}


def test_plugin_folders_import_inside_the_namespace():
    import importlib.util

    import oodbench.datasets
    import oodbench.methods
    import oodbench.postprocessors

    assert Path(oodbench.methods.__file__).parent.name == "methods"
    assert importlib.util.find_spec("methods") is None or "site-packages" not in str(importlib.util.find_spec("methods"))
