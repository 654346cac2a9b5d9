"""The evaluation pipeline behind ``oodbench run`` and :func:`oodbench.run`.

::

    benchmark ─► method.prepare (search / train / load) ─► Modification
              ─► images ─► backbone (+ modification) ─► features (cached) ─► postprocessors ─► scores
              ─► metrics ─► results store

Every method and postprocessor is found through the registry; this module names none. Everything a run will
need is checked before any work (method options and plans, postprocessor parameters and compatibility, APS
splits), and the runs are stored only once all of them are computed, so an error leaves nothing behind.
Features are extracted once per (backbone weights, modification, preprocessing, split) and shared by every
postprocessor, so adding a score or sweeping an APS grid costs no forward pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oodbench.backbones import create_backbone
from oodbench.backbones.base import Backbone
from oodbench.benchmark import ResolvedBenchmark, Role
from oodbench.cache import CacheRoot
from oodbench.errors import IncompatibleError, UserError
from oodbench.features import Features
from oodbench.features.extract import extract_benchmark
from oodbench.method import MethodContext, Modification, method_class
from oodbench.metrics import accuracy, evaluate
from oodbench.registry import get, names
from oodbench.results import ResultsStore, RunRecord

log = logging.getLogger("oodbench")


@dataclass
class RunSettings:
    """What ``oodbench run`` evaluates and how.

    Attributes:
        postprocessors: registry names, or ``("all",)``; None = the benchmark's defaults, else every score
            declaring itself a default for the backbone kind.
        methods: registry names of the methods evaluated side by side (``("none", "setar")``).
        method_options: per method name, the options its constructor takes.
        params: per postprocessor name, hyperparameters to set.
    """

    backbone: str
    pretrained: str | None = None
    postprocessors: tuple[str, ...] | None = None
    methods: tuple[str, ...] = ("none",)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    aps: bool = False
    precision: str = "fp32"
    decode: str = "pil"  # image decoding (oodbench.data.decode); recorded when not the default
    batch_size: int = 128
    num_workers: int | None = None
    device: str = "cpu"
    seed: int = 0
    on_bad: str = "skip"
    quiet: bool = False
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PostResult:
    """One evaluated (method, postprocessor): its record, its per-image scores and where it was stored."""

    method: str
    postprocessor: str
    record: RunRecord
    path: Path | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def default_postprocessors(resolved: ResolvedBenchmark, backbone: Backbone) -> tuple[str, ...]:
    """The benchmark's declared defaults, else every registered score declaring itself a default for the kind."""
    if resolved.spec.default_postprocessors:
        return tuple(resolved.spec.default_postprocessors)
    chosen = tuple(n for n in names("postprocessors") if backbone.kind in getattr(get("postprocessors", n),
                                                                                 "default_for", ()))
    if not chosen:
        raise IncompatibleError(f"no registered postprocessor is a default for {backbone.kind} backbones; pass --post")
    return chosen


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


def needed_roles(classes: Sequence[type], resolved: ResolvedBenchmark, aps: bool) -> set[Role]:
    """The split roles the evaluation reads: ID test and OOD always, covariate-shifted ID when the benchmark has
    some, the fit split only for scores that fit on ID images (``fit_on == "id_fit"``), ID val and OOD val for
    APS."""
    roles = {Role.ID_TEST, Role.OOD} | ({Role.CSID} if resolved.csid else set())
    if any(c.fit_on == "id_fit" for c in classes):
        fit = resolved.fit_split()
        if fit is None:
            needing = ", ".join(c.title() for c in classes if c.fit_on == "id_fit")
            raise UserError(f"{needing} fit on ID images, and benchmark '{resolved.spec.name}' has no ID fit or "
                            "val split")
        roles.add(fit.role)
    if aps:
        if not resolved.ood_val:
            raise UserError(f"--aps needs OOD validation images, and benchmark '{resolved.spec.name}' defines none; "
                            "run without --aps (defaults) or add an ood_val split")
        if resolved.id_val is None:
            raise UserError(f"--aps needs ID validation images, and benchmark '{resolved.spec.name}' has none")
        roles |= {Role.ID_VAL, Role.OOD_VAL}
    return roles


def _configured(cls, settings: RunSettings):
    post = cls()
    try:
        post.set_params(**settings.params.get(cls.registry_name, {}))
    except ValueError as exc:
        raise UserError(f"--param: {exc}") from None
    return post


def run(resolved: ResolvedBenchmark, settings: RunSettings, caches: CacheRoot | None = None,
        store: ResultsStore | None = None, backbone: Backbone | None = None, reuse: bool = False) -> list[PostResult]:
    """Evaluate every (method, postprocessor) of ``settings`` on ``resolved``; store one run per pair.

    Nothing is stored unless every pair was computed. With ``reuse`` (sweeps, ``oodbench tables``), a pair whose
    run is already stored — same settings, data and metrics (:func:`oodbench.results.store.run_identity`) — is not
    stored again: its result points to the stored run.

    Under ``torchrun`` (:mod:`oodbench.distributed`) every rank runs this: the search and the extraction are
    divided, then rank 0 alone scores and stores (its features are the single process's, so are its runs) and
    the other ranks return an empty list. A failure on any rank fails every rank before anything is stored.
    Every record notes the number of processes in ``extra["world_size"]``.
    """
    from oodbench import distributed

    world = distributed.world()
    if distributed.env_world().active and not world.active:
        raise UserError("this command does not divide its work over processes; start it without torchrun "
                        "(`oodbench run` and `oodbench search` do)")
    caches = caches if caches is not None else CacheRoot()
    if backbone is None:
        backbone = create_backbone(settings.backbone, settings.pretrained).to(settings.device)
    posts = settings.postprocessors or default_postprocessors(resolved, backbone)
    classes = select_postprocessors(posts, backbone)
    for cls in classes:
        _configured(cls, settings)  # bad --param values fail here, before any work
        if cls.needs_encoder:
            backbone.require("text_encoder", f"{cls.title()}'s negative-label mining")
    methods = [method_class(m)(**settings.method_options.get(m, {})) for m in dict.fromkeys(settings.methods)]
    ctx = MethodContext(backbone=backbone, benchmark=resolved, caches=caches, seed=settings.seed,
                        device=str(settings.device), on_bad=settings.on_bad, quiet=settings.quiet)
    for method in methods:
        method.check(ctx)
        if world.active and method.produces in ("checkpoint", "prompts"):
            raise UserError(f"method '{method.name}' trains in one process and is not divided over processes: run "
                            "it once without torchrun (its result is cached), or leave it out of this run")
    wanted = feature_names(classes, backbone)
    roles = needed_roles(classes, resolved, settings.aps)
    results: list[PostResult] = []
    for method in methods:
        modification = method.prepare(ctx)
        modification.apply(backbone)
        try:
            features = extract_benchmark(
                backbone, resolved, wanted, roles=roles, cache=caches.features, plan_hash=modification.key,
                batch_size=settings.batch_size, num_workers=settings.num_workers, precision=settings.precision,
                decode=settings.decode,
                device=settings.device, on_bad=settings.on_bad,
            )

            def score(method=method, modification=modification, features=features):
                encoder = _text_encoder(backbone, caches) if any(c.needs_encoder for c in classes) else None
                done = [_evaluate_one(cls, method, modification, backbone, resolved, features, encoder, settings)
                        for cls in classes]
                from oodbench.classify import classify_splits  # Table 7's protocol, where the benchmark has lists

                classified = classify_splits(backbone, resolved, features)
                if classified is not None:
                    for r in done:
                        r.record.extra["classify"] = classified
                return done

            results += distributed.on_main(score, phase="score") or []
        finally:
            modification.restore()

    def save() -> None:
        for r in results:
            r.record.extra["world_size"] = world.size
        if store is not None:
            for r in results:
                r.path = store.save(r.record, r.scores, reuse=reuse)

    distributed.on_main(save, phase="score")
    return results


def _evaluate_one(cls, method, modification: Modification, backbone: Backbone, resolved: ResolvedBenchmark,
                  features: dict[str, Features], encoder, settings: RunSettings) -> PostResult:
    post = _configured(cls, settings)
    by_role: dict[Role, list[Features]] = {}
    for split in resolved.splits():
        if split.name in features:
            by_role.setdefault(split.role, []).append(features[split.name])
    aps_info = None
    t0 = time.perf_counter()
    id_feats = by_role[Role.ID_TEST][0]
    # "id_fit": fit on the ID fit (else val) split's images; "shared": fit reads only model-level entries
    # (class names, text), which every split carries, so no extra split is extracted and none is recorded.
    fit_feats = features[resolved.fit_split().name] if cls.fit_on == "id_fit" else None
    fit_input = id_feats if cls.fit_on == "shared" else fit_feats
    if settings.aps and cls.search_space:
        from oodbench.aps import aps

        ood_val = {f.name: f for f in by_role[Role.OOD_VAL]}
        best, trials = aps(post, fit_input, by_role[Role.ID_VAL][0], ood_val, encoder=encoder)
        aps_info = {"grid": {k: list(v) for k, v in cls.search_space.items()}, "chosen": best, "trials": trials,
                    "selection": "best mean AUROC over OOD-val sets, ties to the first grid point"}
    else:
        post.fit(fit_input, encoder=encoder)
    for warning in post.feature_warnings(id_feats):
        log.warning("%s", warning)
    ood_feats = {f.name: f for f in by_role[Role.OOD]}
    stream = None
    if getattr(cls, "test_time", False):  # a score adapting to the test stream gets the declared protocol
        from oodbench.stream import evaluate_streams

        stream = evaluate_streams(post, id_feats, ood_feats, cls.registry_name)
        id_scores, ood_scores, rows = stream.id_scores, stream.ood_scores, stream.metrics
    else:
        id_scores = post.score(id_feats)
        ood_scores = {name: post.score(f) for name, f in ood_feats.items()}
        rows = evaluate(id_scores, ood_scores)
    csid_feats = {f.name: f for f in by_role.get(Role.CSID, [])}
    fsood, csid_scores = (full_spectrum(post, cls, id_feats, id_scores, csid_feats, ood_feats, ood_scores)
                          if csid_feats else (None, {}))
    seconds = time.perf_counter() - t0
    id_acc = _accuracy(id_feats)
    spec = resolved.spec
    groups = resolved.groups
    import torch

    from oodbench.provenance import provenance

    record = RunRecord(
        benchmark=spec.name,
        id_set=spec.id_test.name,
        ood_sets={name: groups[name] for name in ood_feats},
        backbone=backbone.describe() | {"preprocess": backbone.preprocess_config()
                                        | ({"decode": settings.decode} if settings.decode != "pil" else {})},
        plan=dict(modification.record) | {"method": method.describe(), "display_name": method.title()},
        postprocessor={"name": cls.registry_name, "display_name": cls.title(), "params": post.get_params(),
                       "aps": aps_info, "fit_split": fit_feats.name if fit_feats is not None else None,
                       "fit_count": len(fit_feats) if fit_feats is not None else None},
        metrics=rows,
        counts={"id": len(id_feats), "ood": {n: len(f) for n, f in ood_feats.items()},
                "skipped": {n: len(f.meta.get("skipped", [])) for n, f in features.items() if f.meta.get("skipped")},
                "fit": len(fit_feats) if fit_feats is not None else 0},
        precision=settings.precision,
        id_accuracy=id_acc,
        seed=settings.seed,
        device=str(settings.device),
        provenance=provenance(str(settings.device)),
        extra={"prompt": spec.prompt, "num_classes": len(spec.class_names), "score_seconds": seconds,
               "skipped_files": {n: f.meta["skipped"] for n, f in features.items() if f.meta.get("skipped")},
               "data": benchmark_identity(resolved), "torch": torch.__version__}
              | ({"stream": stream.record} if stream is not None else {})
              | ({"fsood": fsood} if fsood is not None else {}),
    )
    scores = {"id": id_scores, **{f"ood/{n}": s for n, s in ood_scores.items()},
              **{f"csid/{n}": s for n, s in csid_scores.items()}}
    if stream is not None:
        scores.update(stream.extra_scores)
    return PostResult(method.name, cls.registry_name, record, None, scores)


def _accuracy(feats: Features) -> float | None:
    if "logits" not in feats:
        return None
    return accuracy(np.argmax(feats["logits"], axis=1), feats["labels"])


def full_spectrum(post, cls, id_feats: Features, id_scores: np.ndarray, csid_feats: dict[str, Features],
                  ood_feats: dict[str, Features], ood_scores: dict[str, np.ndarray]):
    """Full-spectrum metrics: ID test and every covariate-shifted ID set together as ID, against each OOD set.

    A static score scores each csID set once; a test-time score gets the declared streams with the csID images
    in the ID part (so they share the streams with the ID test images). Returns (the record's ``fsood`` entry,
    per-image csID scores).
    """
    csid = {n: {"n": len(f), "accuracy": _accuracy(f)} for n, f in csid_feats.items()}
    entry: dict[str, Any] = {"protocol": "OOD against ID test + every csID set together (OpenOOD v1.5 "
                                         "eval_ood(fsood=True))", "csid": csid}
    if getattr(cls, "test_time", False):
        from oodbench.stream import evaluate_streams

        joint = Features.concat([id_feats, *csid_feats.values()], name="ID test + csID")
        stream = evaluate_streams(post, joint, ood_feats, cls.registry_name)
        first = stream.extra_scores[f"id/{next(iter(ood_feats))}"]
        bounds = np.cumsum([len(id_feats)] + [len(f) for f in csid_feats.values()])
        scores = {n: first[a:b] for n, a, b in zip(csid_feats, bounds[:-1], bounds[1:])}
        entry |= {"metrics": stream.metrics, "stream": {k: stream.record[k] for k in ("seeds", "per_order", "std")}}
        return entry, scores
    scores = {n: post.score(f) for n, f in csid_feats.items()}
    entry["metrics"] = evaluate(np.concatenate([np.asarray(id_scores), *scores.values()]), ood_scores)
    return entry, scores


def benchmark_identity(resolved: ResolvedBenchmark) -> dict[str, Any]:
    """What identifies the data of a run: per split its role, image count, file-list fingerprint and the SHA-256
    of its file list (list-based splits), plus what the spec declares (ad-hoc benchmarks: folders, class names)."""
    digests = resolved.list_digests
    return {"splits": {s.name: {"role": str(s.role), "n": len(s.source), "fingerprint": s.source.fingerprint()}
                       | ({"list_sha256": digests[s.name]} if s.name in digests else {})
                       for s in resolved.splits()},
            **resolved.spec.identity}


def _text_encoder(backbone: Backbone, caches: CacheRoot):
    encoder = backbone.text_encoder()
    encoder.cache_dir = caches.neglabel
    return encoder
