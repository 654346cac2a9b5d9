"""A method registered from a --plugin file runs through `oodbench run` beside vanilla with no engine edit, and the
Python API mirrors the CLI."""

import textwrap

import numpy as np
import torch
from PIL import Image

from oodbench.backbones import create_backbone
from oodbench.cli import main
from oodbench.registry import registry
from oodbench.results import ResultsStore

PLUGIN = textwrap.dedent('''
    """A method that removes the 25% *principal* singular components of every vision W_up (a fixed layer set)."""
    from oodbench.method import Method, Modification
    from oodbench.registry import get, register
    from oodbench.methods.setar import Plan, PlanEntry


    def fixed_plan(backbone):
        layers = range(backbone.towers()["vision"])
        return Plan([PlanEntry("vision", "W_up", i, 0.25) for i in layers], prune="principal", seed=5)


    @register("methods", "principal-fixed")
    class PrincipalFixed(Method):
        """Removes the principal 25% of every vision W_up (no search)."""

        display_name = "Principal-25"

        def prepare(self, ctx):
            plan = fixed_plan(ctx.backbone)
            modifier = get("modifiers", "setar")()

            def apply(backbone):
                modifier.apply(backbone, plan)
                return modifier.restore

            return Modification(self.name, key=plan.hash(), record={"name": self.name, "hash": plan.hash()},
                                apply_fn=apply)
''')


def _mcm(image, text):
    image = image / np.linalg.norm(image, axis=-1, keepdims=True)
    text = text / np.linalg.norm(text, axis=-1, keepdims=True)
    z = image @ text.T
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).max(1)


def test_plugin_method_runs_beside_vanilla_with_no_engine_edit(folders, tmp_path, capsys):
    plugin = tmp_path / "principal_plugin.py"
    plugin.write_text(PLUGIN)
    args = ["--backbone", "test_clip_tiny", "--id-test", str(folders / "id_test"), "--ood", f"blobs={folders / 'ood'}",
            "--classes", str(folders / "classes.txt"), "--cache-dir", str(tmp_path / "cache"),
            "--results-root", str(tmp_path / "runs"), "--plugin", str(plugin), "-q"]
    try:
        assert main(["run", "--post", "mcm", "--method", "principal-fixed", *args]) == 0
        table = capsys.readouterr().out
        assert "Vanilla" in table and "Principal-25" in table
        runs = {r.method: r for r in ResultsStore(tmp_path / "runs").runs()}
        assert set(runs) == {"none", "principal-fixed"}
        assert runs["principal-fixed"].plan["display_name"] == "Principal-25"

        # independent computation of the plugin's ID scores: the same plan applied by hand, MCM written here
        from oodbench.methods.setar import Plan, PlanEntry, SetarModifier

        bb = create_backbone("test_clip_tiny")
        plan = Plan([PlanEntry("vision", "W_up", i, 0.25) for i in range(bb.towers()["vision"])], "principal", 5)
        names = [line.strip() for line in (folders / "classes.txt").read_text().splitlines() if line.strip()]
        files = sorted((folders / "id_test").rglob("*.png"), key=lambda p: (p.parent.name, p.name))
        with torch.no_grad():
            mod = SetarModifier().apply(bb, plan)
            x = torch.stack([bb.preprocess()(Image.open(f).convert("RGB")) for f in files])
            image = bb.compute_features(x, {"image"})["image"].numpy()
            text = bb.encode_text([f"a photo of a {n}" for n in names]).numpy()
            mod.restore()
        stored = ResultsStore(tmp_path / "runs").scores(runs["principal-fixed"].run_id)["id"]
        np.testing.assert_allclose(np.sort(stored), np.sort(_mcm(image, text)), rtol=1e-5, atol=1e-6)
        vanilla = ResultsStore(tmp_path / "runs").scores(runs["none"].run_id)["id"]
        assert np.abs(np.sort(vanilla) - np.sort(stored)).max() > 1e-4  # the method changed the model

        assert runs["principal-fixed"].plan["hash"] == plan.hash()
        capsys.readouterr()
        assert main(["list", "methods"]) == 0  # registered by the --plugin file of the run above
        listed = capsys.readouterr().out
        assert "principal-fixed" in listed and "setar" in listed and "none" in listed
    finally:
        registry("methods")._entries.pop("principal-fixed", None)


def test_python_api_mirrors_the_cli(folders, tmp_path):
    import oodbench
    from oodbench.data.adhoc import adhoc_benchmark

    spec = adhoc_benchmark(folders / "id_test", folders / "classes.txt", {"blobs": folders / "ood"},
                           id_val=folders / "id_val")
    results = oodbench.run("test_clip_tiny", spec, post="mcm,energy", cache_dir=tmp_path / "cache",
                           results_root=tmp_path / "api", device="cpu")
    assert [(r.method, r.postprocessor) for r in results] == [("none", "mcm"), ("none", "energy")]
    stored = oodbench.store(tmp_path / "api").runs(postprocessor="mcm")
    assert len(stored) == 1 and stored[0].metrics == results[0].record.metrics
    assert main(["run", "--post", "mcm,energy", "--backbone", "test_clip_tiny", "--id-test", str(folders / "id_test"),
                 "--id-val", str(folders / "id_val"), "--ood", f"blobs={folders / 'ood'}", "--classes",
                 str(folders / "classes.txt"), "--cache-dir", str(tmp_path / "cache"), "--results-root",
                 str(tmp_path / "cli"), "-q", "--device", "cpu"]) == 0
    cli = {r.postprocessor["name"]: r.metrics for r in oodbench.store(tmp_path / "cli").runs()}
    assert cli == {r.postprocessor: r.record.metrics for r in results}
    plan = oodbench.search("test_clip_tiny", spec, cache_dir=tmp_path / "cache", device="cpu", ratios=(0.0, 0.2),
                           top_k=2, modality="vision", out=tmp_path / "plan").plan
    assert (tmp_path / "plan" / "plan.json").is_file() and len(plan.entries) == 2
