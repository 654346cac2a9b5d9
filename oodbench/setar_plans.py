"""Where ``oodbench run --method setar`` gets its plan: a ``--plan`` file, or a SeTAR search on the ID val split.

A search result is cached under ``<cache-dir>/plans/<key>/`` (plan, per-step and per-candidate logs), keyed by
everything that determines it: backbone weights, preprocessing, the val images, class names, prompt and the
search settings. A second run with the same ingredients reuses the plan without searching again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.backbones.base import Backbone
from oodbench.data.loader import SourceDataset, collate
from oodbench.errors import DataError, UserError
from oodbench.features.cache import FeatureCache, hash_json

log = logging.getLogger("oodbench")


def search_config(backbone: Backbone, resolved, overrides: dict[str, Any]):
    """The SeTAR search settings: the published preset for (backbone, benchmark), then ``overrides``."""
    from oodbench.methods.setar import SearchConfig, search_preset

    spec = resolved.spec
    preset = search_preset(backbone.name, spec.name, len(spec.class_names), spec.hparams)
    values = {"lam": preset.lam, "top_k": preset.top_k, "batch_size": preset.batch_size, "seed": preset.seed}
    if backbone.kind != "clip":
        values["modality"] = "vision"
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SearchConfig(**values), preset


def load_val_images(backbone: Backbone, source, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed ID val images ``[N, 3, H, W]`` and labels ``[N]``, in list order (unreadable files left out)."""
    loader = torch.utils.data.DataLoader(SourceDataset(source, backbone.preprocess()), batch_size=batch_size,
                                         shuffle=False, num_workers=0, collate_fn=collate)
    images, indices, bad = [], [], []
    for x, idx, b in loader:
        bad += b
        if x is not None:
            images.append(x)
            indices.append(idx)
    if not images:
        raise DataError(f"{source.name}: none of its {len(source)} images could be read for the SeTAR search")
    if bad:
        log.warning("%s: %d unreadable image(s) left out of the SeTAR search (e.g. %s)", source.name, len(bad),
                    source.describe(bad[0][0]))
    idx = torch.cat(indices)
    labels = torch.as_tensor(np.array(source.labels), dtype=torch.int64)[idx]
    return torch.cat(images), labels


def run_search(backbone: Backbone, resolved, config, preset, tf32: bool = False):
    """Search a SeTAR plan on the ID val split of ``resolved`` with ``config`` (from :func:`search_config`;
    ``preset`` says where its lambda / K / batch size come from).

    ``tf32`` allows TF32 tensor cores during the search only (CUDA; faster, not bit-exact fp32; recorded).
    """
    from oodbench.methods.setar import search
    from oodbench.runtime import set_float32_mode

    source = resolved.id_val
    if source is None:
        raise UserError(f"benchmark '{resolved.spec.name}' has no ID val split to search a SeTAR plan on; "
                        "pass --plan FILE (run) or use a benchmark with a val split")
    spec = resolved.spec
    images, labels = load_val_images(backbone, source)
    log.info("SeTAR search on %s (%d images), %s: lambda %g, K %d, batch %d (%s)", source.name, len(labels),
             config.searcher, config.lam, config.top_k, config.batch_size, preset.source)
    set_float32_mode(tf32)
    try:
        result = search(backbone, images.to(backbone.device), labels.to(backbone.device), list(spec.class_names),
                        spec.prompt, config)
    finally:
        set_float32_mode(False)
    result.plan.search.update({"preset": preset.source, "benchmark": spec.name, "val_split": source.name,
                               "val_fingerprint": source.fingerprint(), "tf32": tf32})
    return result


def save_search(result, folder: Path) -> Path:
    """Write plan and logs into ``folder`` in one step (a temporary folder renamed), so no half-written plan is read."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        result.save(tmp)
        (tmp / "search_info.json").write_text(json.dumps({"seconds": result.log.seconds, **result.info}) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def obtain_plan(backbone: Backbone, resolved, settings, cache: FeatureCache):
    """The plan of ``settings.plan_file``, or the (cached) result of a SeTAR search on the ID val split."""
    from oodbench.methods.setar import Plan

    if settings.plan_file:
        plan = Plan.load(settings.plan_file)
        log.info("SeTAR plan %s from %s: %s", plan.hash(), settings.plan_file, plan.describe())
        return plan
    if resolved.id_val is None:
        raise UserError(f"benchmark '{resolved.spec.name}' has no ID val split to search a SeTAR plan on; "
                        "pass --plan FILE")
    config, preset = search_config(backbone, resolved, settings.search)
    spec = resolved.spec
    key = hash_json({"weights": backbone.weights_hash(), "preprocess": backbone.preprocess_config(),
                     "val": resolved.id_val.fingerprint(), "classes": list(spec.class_names), "prompt": spec.prompt,
                     "search": config.to_dict(), "tf32": settings.search_tf32, "version": 1})
    folder = Path(cache.root).parent / "plans" / key
    if (folder / "plan.json").is_file():
        plan = Plan.load(folder / "plan.json")
        log.info("SeTAR plan %s reused from the cache (%s): %s", plan.hash(), folder, plan.describe())
        return plan
    result = run_search(backbone, resolved, config, preset, tf32=settings.search_tf32)
    save_search(result, folder)
    log.info("SeTAR plan %s: %s (search log in %s)", result.plan.hash(), result.plan.describe(), folder)
    return result.plan
