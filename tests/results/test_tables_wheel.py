"""`oodbench tables` from an installed wheel, outside the source tree: the paper's published numbers ship as
package data, so the ours-vs-paper view is written with the paper's values.

The wheel is built from a copy of the project's files (`pip wheel --no-deps --no-build-isolation`), installed with
`pip install --no-deps --target` into a fresh virtual environment whose only other path is the project
environment's site-packages (for torch and the other dependencies; its editable finder of oodbench is not
activated, since `.pth` files of a plain path entry are not processed). Everything then runs from an empty folder.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ("pyproject.toml", "README.md", "oodbench", "methods", "postprocessors", "datasets", "papers")


def _run(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_tables_render_from_an_installed_wheel(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in PACKAGE_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp_path / "dist"), str(src)], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("oodbench-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
         cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OODBENCH_RESULTS_ROOT")}
    where = _run([str(python), "-c", "import oodbench.papers.setar.published as p; print(p.__file__); print(p.PAPER_DIR)"],
                 cwd=work, env=env).split()
    assert all(Path(w).is_relative_to(site) for w in where), where  # the wheel's copy, not the checkout

    # an imported run (official-format files) and Table 1 from the stored runs only
    from test_import_tables import fpr95_ref, write_official

    truth = write_official(work)
    files = {"ImageNet-1K test": "ID_ImageNet1K", "iNaturalist": "OOD_iNaturalist", "SUN": "OOD_Sun",
             "Places": "OOD_Places", "Texture": "OOD_Texture"}
    argv = [str(python), "-m", "oodbench", "runs", "import", "--benchmark", "imagenet1k", "--backbone",
            "clip_vit_b16", "--method", "none", "--post", "mcm", "--column", "mcm_score", "--higher-is", "ood",
            "--results-root", "runs", "--id", f"scores_{files['ImageNet-1K test']}_test.csv"]
    for name in ("iNaturalist", "SUN", "Places", "Texture"):
        argv += ["--ood", f"{name}=scores_{files[name]}_test.csv"]
    _run(argv, cwd=work, env=env)
    _run([str(python), "-m", "oodbench", "tables", "--table", "1", "--no-run", "--out", "out", "--results-root",
          "runs"], cwd=work, env=env)

    with open(work / "out" / "table01_training_free_vs_paper.csv", newline="", encoding="utf-8") as f:
        rows = {(r["row"], r["column"], r["metric"]): r for r in csv.DictReader(f)}
    cell = rows[("ImageNet1K / MCM Score / Vanilla MCM", "iNaturalist", "FPR95")]
    assert cell["paper"] == "32.07"  # NeurIPS Table 1, Vanilla MCM∗, iNaturalist FPR95, from the package data
    ours = 100 * fpr95_ref(truth["ImageNet-1K test"]["mcm_score"], truth["iNaturalist"]["mcm_score"])
    assert float(cell["ours"]) == pytest.approx(ours, abs=1e-4) and cell["ours_imported"] == "yes"
    data = json.loads((work / "out" / "table01_training_free.json").read_text())
    assert data["paper"] == ["neurips", 1]
