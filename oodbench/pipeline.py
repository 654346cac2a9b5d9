"""The evaluation pipeline behind ``oodbench run``.

::

    benchmark ─► images ─► backbone (+ modifier plan) ─► features (cached) ─► postprocessors ─► scores
        ─► metrics ─► results store

Features are extracted once per (backbone weights, plan, preprocessing, split) and shared by every requested
postprocessor, so adding a score or sweeping an APS grid costs no forward pass. With ``methods=("none",
"setar")`` the vanilla and the SeTAR-modified model are evaluated on the same splits, one stored run each.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from oodbench.backbones import create_backbone
from oodbench.backbones.base import Backbone
from oodbench.errors import IncompatibleError, UserError
from oodbench.features import Features
from oodbench.features.cache import FeatureCache
from oodbench.features.extract import extract_benchmark
from oodbench.metrics import accuracy, evaluate
from oodbench.registry import get, names
from oodbench.results import ResultsStore, RunRecord
from oodbench.setar_plans import obtain_plan

log = logging.getLogger("oodbench")

DEFAULT_POSTPROCESSORS = ("mcm", "glmcm", "neglabel", "energy", "maxlogit")
METHODS = ("none", "setar")


@dataclass
class RunSettings:
    """What ``oodbench run`` evaluates and how. ``search`` overrides the SeTAR search settings
    (:class:`oodbench.methods.setar.SearchConfig` fields) of the backbone/benchmark preset."""

    backbone: str
    pretrained: str | None = None
    postprocessors: tuple[str, ...] = DEFAULT_POSTPROCESSORS
    methods: tuple[str, ...] = ("none",)
    plan_file: str | None = None
    aps: bool = False
    precision: str = "fp32"
    batch_size: int = 128
    num_workers: int | None = None
    device: str = "cpu"
    seed: int = 0
    on_bad: str = "skip"
    search: dict[str, Any] = field(default_factory=dict)
    search_tf32: bool = False
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PostResult:
    """One evaluated (method, postprocessor): its stored record and where it lives."""

    method: str
    postprocessor: str
    record: RunRecord
    path: Path | None


def select_postprocessors(requested: Sequence[str], backbone: Backbone) -> list[type]:
    """Classes of the requested postprocessors; ``all`` = every registered one the backbone can feed.

    Raises:
        IncompatibleError: an explicitly requested postprocessor needs features the backbone lacks.
    """
    if list(requested) == ["all"]:
        chosen = []
        for name in names("postprocessors"):
            cls = get("postprocessors", name)
            try:
                cls.check_compatible(backbone.provides, backbone.name)
                chosen.append(cls)
            except IncompatibleError as exc:
                log.info("skipping %s", exc)
        if not chosen:
            raise IncompatibleError(f"no registered postprocessor works with {backbone.name}")
        return chosen
    classes = []
    for name in requested:
        cls = get("postprocessors", name)
        cls.check_compatible(backbone.provides, backbone.name)
        if cls not in classes:
            classes.append(cls)
    return classes


def feature_names(classes: Sequence[type], backbone: Backbone) -> set[str]:
    """Union of what the postprocessors read, plus ``logits`` (for ID accuracy) when the backbone gives them."""
    wanted = set().union(*(set(c.requires) for c in classes)) | {"labels", "class_names"}
    if "logits" in backbone.provides:
        wanted.add("logits")
    return wanted


def split_roles(classes: Sequence[type], resolved, aps: bool) -> set[str]:
    roles = {"id_test", "ood"}
    if any(c.fit_on for c in classes):
        roles.add("id_fit" if resolved.id_fit is not None else "id_val")
    if aps:
        if not resolved.ood_val:
            raise UserError(f"--aps needs OOD validation images, and benchmark '{resolved.spec.name}' defines none; "
                            "run without --aps (defaults) or add an ood_val split")
        if resolved.id_val is None:
            raise UserError(f"--aps needs ID validation images, and benchmark '{resolved.spec.name}' has none")
        roles |= {"id_val", "ood_val"}
    return roles


def run(resolved, settings: RunSettings, cache: FeatureCache, store: ResultsStore | None,
        backbone: Backbone | None = None) -> list[PostResult]:
    """Evaluate every (method, postprocessor) of ``settings`` on ``resolved`` and store one run per pair."""
    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if backbone is None:
        backbone = create_backbone(settings.backbone, settings.pretrained).to(settings.device)
    classes = select_postprocessors(settings.postprocessors, backbone)
    wanted = feature_names(classes, backbone)
    roles = split_roles(classes, resolved, settings.aps)
    results: list[PostResult] = []
    for method in settings.methods:
        modifier = get("modifiers", method)()
        plan = obtain_plan(backbone, resolved, settings, cache) if method == "setar" else None
        modifier.apply(backbone, plan)
        try:
            features = extract_benchmark(
                backbone, resolved, wanted, roles=roles, cache=cache, plan_hash=modifier.plan_hash,
                batch_size=settings.batch_size, num_workers=settings.num_workers, precision=settings.precision,
                device=settings.device, on_bad=settings.on_bad,
            )
            encoder = _text_encoder(backbone, cache) if any(c.needs_encoder for c in classes) else None
            for cls in classes:
                results.append(_evaluate_one(cls, method, plan, modifier, backbone, resolved, features, encoder,
                                             settings, store))
        finally:
            modifier.restore()
    return results


def _evaluate_one(cls, method, plan, modifier, backbone, resolved, features: dict[str, Features], encoder,
                  settings: RunSettings, store) -> PostResult:
    by_role = _by_role(features)
    post = cls()
    try:
        post.set_params(**settings.params.get(cls.registry_name, {}))
    except ValueError as exc:
        raise UserError(f"--param: {exc}") from None
    aps_info = None
    t0 = time.perf_counter()
    fit_feats = by_role.get("id_fit", by_role.get("id_val", [None]))[0] if cls.fit_on else None
    if settings.aps and cls.search_space:
        from oodbench.postprocessors.aps import aps

        ood_val = {f.name: f for f in by_role["ood_val"]}
        best, trials = aps(post, fit_feats, by_role["id_val"][0], ood_val, encoder=encoder)
        aps_info = {"grid": {k: list(v) for k, v in cls.search_space.items()}, "chosen": best, "trials": trials,
                    "selection": "best mean AUROC over OOD-val sets, ties to the first grid point"}
    else:
        post.fit(fit_feats, encoder=encoder)
    id_feats = by_role["id_test"][0]
    id_scores = post.score(id_feats)
    ood_feats = {f.name: f for f in by_role["ood"]}
    ood_scores = {name: post.score(f) for name, f in ood_feats.items()}
    rows = evaluate(id_scores, ood_scores)
    seconds = time.perf_counter() - t0
    id_acc = None
    if "logits" in id_feats:
        id_acc = accuracy(np.argmax(id_feats["logits"], axis=1), id_feats["labels"])
    spec = resolved.spec
    record = RunRecord(
        benchmark=spec.name,
        id_set=spec.id_test.name,
        ood_sets={name: f.meta.get("group", "far") for name, f in ood_feats.items()},
        backbone=backbone.describe() | {"preprocess": backbone.preprocess_config()},
        plan={"name": method, "hash": modifier.plan_hash, **(plan.to_dict() if plan is not None else {})},
        postprocessor={"name": cls.registry_name, "params": post.get_params(), "aps": aps_info,
                       "fit_split": fit_feats.name if fit_feats is not None else None,
                       "fit_count": len(fit_feats) if fit_feats is not None else None},
        metrics=rows,
        counts={"id": len(id_feats), "ood": {n: len(f) for n, f in ood_feats.items()},
                "skipped": {n: len(f.meta.get("skipped", [])) for n, f in features.items() if f.meta.get("skipped")},
                "fit": len(fit_feats) if fit_feats is not None else 0},
        precision=settings.precision,
        id_accuracy=id_acc,
        seed=settings.seed,
        device=str(settings.device),
        extra={"prompt": spec.prompt, "num_classes": len(spec.class_names), "score_seconds": seconds,
               "skipped_files": {n: f.meta["skipped"] for n, f in features.items() if f.meta.get("skipped")},
               "torch": torch.__version__},
    )
    scores = {"id": id_scores, **{f"ood/{n}": s for n, s in ood_scores.items()}}
    path = store.save(record, scores) if store is not None else None
    return PostResult(method, cls.registry_name, record, path)


def _by_role(features: dict[str, Features]) -> dict[str, list[Features]]:
    out: dict[str, list[Features]] = {}
    for f in features.values():
        out.setdefault(f.meta["role"], []).append(f)
    return out


def _text_encoder(backbone: Backbone, cache: FeatureCache):
    if not hasattr(backbone, "text_encoder"):
        raise IncompatibleError(f"{backbone.name} has no text encoder (needed to mine NegLabel's negative labels)")
    encoder = backbone.text_encoder()
    encoder.cache_dir = Path(cache.root).parent / "neglabel"
    return encoder
