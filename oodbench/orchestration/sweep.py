"""Sweeps and seeds: run a grid of settings (one stored run per point and seed); run the runs the paper tables
need (:func:`plan_runs`, :func:`execute`).

::

    from oodbench.orchestration import sweep

    results = sweep.run_seeds(resolved, settings, seeds=(3, 4, 5), caches=caches, store=store, backbone=bb)
    rows = aggregate(results)                       # oodbench.reporting.aggregate: mean ± std per point and set
    console.print(aggregate_table(rows))            # the paper's Table 2 format: "38.77 ± 0.22"

    points = sweep.expand_grid(sweep.parse_grid(["setar.lam=0.05,0.1", "mcm.tau=1,2"]))
    results = sweep.run_grid(resolved, settings, points, seeds=(3, 4, 5), caches=caches, store=store)

Reuse: every point goes through :func:`oodbench.orchestration.pipeline.run` with one cache root and one loaded
backbone, so
features are extracted once per (weights, plan, preprocessing, split) — points that differ only in a
postprocessor hyperparameter, or whose searches end in the same plan, cost no forward pass — and a SeTAR search
or a fine-tuning run is done once per setting (``plans/`` and ``checkpoints/`` caches). The vanilla model is
evaluated once per (postprocessor hyperparameters, seed), not at every point. SeTAR's seed option is set from the
run's seed only for the random prune strategy (the only one it changes), so a minor-prune search is not repeated
per seed.

Orchestration floor: it calls the pipeline, the store and the specs (imports local where heavy); averaging and
showing the results is :mod:`oodbench.reporting.aggregate`.
"""

from __future__ import annotations

import ast
import itertools
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from oodbench.errors import UserError
from oodbench.paper import RunSpec

log = logging.getLogger("oodbench")


# ------------------------------------------------------------------------------------------------------ grids
@dataclass(frozen=True)
class Axis:
    """One ``--grid OWNER.NAME=V1,V2`` axis: ``kind`` is ``method`` (an option) or ``post`` (a hyperparameter)."""

    kind: str
    owner: str
    name: str
    values: tuple[Any, ...]

    @property
    def label(self) -> str:
        return f"{self.owner}.{self.name}"


@dataclass(frozen=True)
class GridPoint:
    """One point of a grid: option overrides per method, hyperparameter overrides per postprocessor."""

    options: tuple[tuple[str, str, Any], ...] = ()  # (method, option, value)
    params: tuple[tuple[str, str, Any], ...] = ()  # (postprocessor, param, value)

    @property
    def label(self) -> str:
        parts = [f"{o}.{n}={v}" for o, n, v in self.options + self.params]
        return ", ".join(parts) or "(base settings)"

    def apply(self, settings) -> Any:
        """A copy of :class:`~oodbench.orchestration.pipeline.RunSettings` ``settings`` with this point's overrides."""
        options = {m: dict(o) for m, o in settings.method_options.items()}
        for method, name, value in self.options:
            options.setdefault(method, {})[name] = value
        params = {p: dict(v) for p, v in settings.params.items()}
        for post, name, value in self.params:
            params.setdefault(post, {})[name] = value
        return replace(settings, method_options=options, params=params)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid(items: Iterable[str]) -> list[Axis]:
    """``["setar.lam=0.05,0.1", "energy.temperature=0.1,1"]`` -> axes. The owner is a registered method (its
    option) or postprocessor (its hyperparameter); values are Python literals. Bad items are one-line errors."""
    from oodbench.registry import RegistryError, get, names

    axes: list[Axis] = []
    for item in items:
        key, sep, values = item.partition("=")
        owner, dot, name = key.strip().partition(".")
        if not sep or not dot or not owner or not name or not values.strip():
            raise UserError(f"--grid expects OWNER.NAME=V1,V2,... (e.g. setar.lam=0.05,0.1), got '{item}'")
        vals = tuple(_literal(v.strip()) for v in values.split(",") if v.strip())
        if owner in ("seed", "seeds") or name in ("seed",):
            raise UserError(f"--grid {item}: give seeds with --seeds 3,4,5, not as a grid axis")
        kind = None
        for k, registry_kind in (("method", "methods"), ("post", "postprocessors")):
            try:
                owner = get(registry_kind, owner).registry_name
                kind = k
                break
            except (RegistryError, AttributeError):
                continue
        if kind is None:
            raise UserError(f"--grid {item}: '{owner}' is neither a method ({', '.join(names('methods'))}) nor a "
                            f"postprocessor ({', '.join(names('postprocessors'))})")
        if any(a.owner == owner and a.name == name for a in axes):
            raise UserError(f"--grid: {owner}.{name} is given twice")
        if kind == "method":
            from oodbench.method import method_class

            known = method_class(owner).option_names
            if name not in known:
                raise UserError(f"--grid {item}: method {owner} has no option '{name}' (options: {', '.join(known)})")
        else:
            valid = get("postprocessors", owner)()._param_names()
            if name not in valid:
                raise UserError(f"--grid {item}: postprocessor {owner} has no hyperparameter '{name}' "
                                f"(valid: {', '.join(valid) or 'none'})")
        axes.append(Axis(kind, owner, name, vals))
    return axes


def expand_grid(axes: Sequence[Axis]) -> list[GridPoint]:
    """Every combination of the axes' values (the first axis varies slowest); one empty point without axes."""
    points = []
    for combo in itertools.product(*(a.values for a in axes)):
        opts = tuple((a.owner, a.name, v) for a, v in zip(axes, combo) if a.kind == "method")
        params = tuple((a.owner, a.name, v) for a, v in zip(axes, combo) if a.kind == "post")
        points.append(GridPoint(opts, params))
    return points or [GridPoint()]


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``"3,4,5"`` -> ``(3, 4, 5)``."""
    if not text:
        return ()
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got '{text}'") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: a seed is given twice ({text})")
    return seeds


# --------------------------------------------------------------------------------------------- running grids
@dataclass
class SweepResult:
    """One stored (point, seed, method, postprocessor) run."""

    point: GridPoint
    seed: int
    result: Any  # oodbench.orchestration.pipeline.PostResult

    @property
    def record(self):
        return self.result.record


def _method_options_for_seed(settings, seed: int) -> dict[str, dict[str, Any]]:
    """Each method's options for the run of ``seed``, as the method says (:meth:`Method.options_for_seed`: SeTAR
    takes the run's seed as its random-prune seed, and only then)."""
    from oodbench.method import method_class

    return {m: method_class(m).options_for_seed(dict(o), seed) for m, o in settings.method_options.items()}


def run_grid(resolved, settings, points: Sequence[GridPoint], seeds: Sequence[int] = (), caches=None, store=None,
             backbone=None, baseline: bool = True) -> list[SweepResult]:
    """Run every (point, seed): one stored run per (point, seed, method, postprocessor).

    Args:
        resolved: the :class:`~oodbench.benchmark.ResolvedBenchmark`.
        settings: the base :class:`~oodbench.orchestration.pipeline.RunSettings` (its ``seed`` is used when ``seeds`` is empty).
        points: grid points (:func:`expand_grid`).
        seeds: seeds to run each point with.
        baseline: evaluate the baseline methods (vanilla) once per (postprocessor hyperparameters, seed).

    Nothing is stored for a point that fails; points stored before stay. A point whose runs are already stored
    (a rerun after an interruption) is recomputed from the caches but not stored again: its results point to the
    stored runs (:meth:`~oodbench.results.store.ResultsStore.save` with ``reuse``).
    """
    from oodbench.backbones import create_backbone
    from oodbench.cache import CacheRoot
    from oodbench.method import method_class
    from oodbench.orchestration.pipeline import run as run_pipeline
    from oodbench.runtime import seed_everything

    caches = caches if caches is not None else CacheRoot()
    if backbone is None:
        backbone = create_backbone(settings.backbone, settings.pretrained).to(settings.device)
    seeds = tuple(seeds) or (settings.seed,)
    baselines = [m for m in settings.methods if method_class(m).baseline]
    chosen = [m for m in settings.methods if m not in baselines]
    out: list[SweepResult] = []
    done_baseline: set = set()
    total = len(points) * len(seeds)
    t0 = time.perf_counter()
    for i, (point, seed) in enumerate(itertools.product(points, seeds)):
        s = point.apply(settings)
        s = replace(s, seed=seed, method_options=_method_options_for_seed(s, seed))
        key = (tuple(sorted((p, tuple(sorted(v.items()))) for p, v in s.params.items())), seed)
        methods = list(chosen)
        if baseline and baselines and key not in done_baseline:
            methods = baselines + methods
            done_baseline.add(key)
        if not methods:
            continue
        log.info("sweep point %d/%d: %s, seed %d (%s)", i + 1, total, point.label, seed, ", ".join(methods))
        seed_everything(seed)
        results = run_pipeline(resolved, replace(s, methods=tuple(methods)), caches, store, backbone=backbone,
                               reuse=True)
        out += [SweepResult(point, seed, r) for r in results]
    log.info("sweep: %d run(s) in %.1f s", len(out), time.perf_counter() - t0)
    return out


def run_seeds(resolved, settings, seeds: Sequence[int], caches=None, store=None, backbone=None) -> list[SweepResult]:
    """``oodbench run --seeds 3,4,5``: the settings once per seed (vanilla once per seed too); aggregate with
    :func:`~oodbench.reporting.aggregate.aggregate` and show with
    :func:`~oodbench.reporting.aggregate.aggregate_table`."""
    return run_grid(resolved, settings, [GridPoint()], seeds, caches, store, backbone)


# --------------------------------------------------------------------------------- runs the tables need
@dataclass
class Group:
    """Runs evaluated by one pipeline call: one benchmark, backbone, method + options, seed; several scores."""

    specs: list[RunSpec]

    @property
    def first(self) -> RunSpec:
        return self.specs[0]

    @property
    def posts(self) -> list[str]:
        return list(dict.fromkeys(s.post for s in self.specs))

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return {s.post: s.params for s in self.specs if s.params}

    def method_options(self) -> dict[str, Any]:
        """The method's options for this group's seed, as the method says (:meth:`Method.options_for_seed`)."""
        from oodbench.method import method_class

        spec = self.first
        if spec.seed is None:
            return dict(spec.options)
        return method_class(spec.method).options_for_seed(dict(spec.options), spec.seed)

    def command(self, data_root: str | None = None) -> str:
        """The ``oodbench`` command that produces these runs."""
        s = self.first
        if s.step is not None:
            opts = " ".join(f"{k}={v}" for k, v in sorted(s.options.items())) or "weight_type=W_up, the default"
            return (f"oodbench tables --table weight-types --benchmark {s.benchmark}"
                    + (f" --data-root {data_root}" if data_root else "")
                    + f"   # {s.backbone}: the SeTAR plan ({opts}) evaluated after each search step")
        parts = ["oodbench run", f"--benchmark {s.benchmark}"]
        if data_root:
            parts.append(f"--data-root {data_root}")
        parts.append(f"--backbone {s.backbone}")
        if s.pretrained:
            parts.append(f"--pretrained {s.pretrained}")
        parts.append(f"--post {','.join(self.posts)}")
        for post, params in self.params.items():
            parts += [f"--param {post}.{k}={v}" for k, v in sorted(params.items())]
        if s.method != "none":
            from oodbench.method import method_class

            parts.append(f"--method {s.method}")
            flags = method_class(s.method).run_flags
            for k, v in sorted({**method_class(s.method).shown_options(), **s.options}.items()):
                flag = flags.get(k)
                if flag is None:
                    parts.append(f"[option {k}={v}: Python API only]")
                elif v is True:
                    parts.append(flag)
                elif isinstance(v, (list, tuple)):
                    parts.append(f"{flag} {','.join(map(str, v))}")
                else:
                    parts.append(f"{flag} {v}")
        if s.seed is not None:
            parts.append(f"--seed {s.seed}")
        return " ".join(parts)


def group_specs(specs: Iterable[RunSpec]) -> list[Group]:
    """Specs grouped so that each group is one pipeline call (a postprocessor appears once per group)."""
    groups: dict[tuple, list[list[RunSpec]]] = {}
    for spec in dict.fromkeys(specs):
        subs = groups.setdefault(spec.group_key(), [])
        for sub in subs:
            if all(s.post != spec.post for s in sub):
                sub.append(spec)
                break
        else:
            subs.append([spec])
    return [Group(sub) for subs in groups.values() for sub in subs]


@dataclass
class Availability:
    """Whether a benchmark's data / a backbone's weights can be used, and why not."""

    ok: bool
    reason: str = ""
    resolved: Any = None
    backbone: Any = None


@dataclass
class RunPlan:
    """What :func:`execute` will do: the groups to run and the ones that cannot run (and why)."""

    to_run: list[Group] = field(default_factory=list)
    cannot: list[tuple[Group, str]] = field(default_factory=list)
    blocked: list[RunSpec] = field(default_factory=list)
    data: dict[str, Availability] = field(default_factory=dict)
    weights: dict[tuple, Availability] = field(default_factory=dict)


def _check_data(benchmark: str, data_root, on_bad: str, cache_dir) -> Availability:
    from oodbench.benchmark import get_benchmark
    from oodbench.data.resolve import resolve

    try:
        spec = get_benchmark(benchmark)
        resolved = resolve(spec, data_root if spec.needs_data_root else None, on_bad=on_bad)
        if cache_dir is not None:
            from oodbench.data.digests import use_digest_dir

            resolved = use_digest_dir(resolved, Path(cache_dir) / "digests")
    except Exception as exc:  # DataError / UserError / RegistryError: the reason is the message
        return Availability(False, f"data: {exc}")
    return Availability(True, resolved=resolved)


def _check_weights(backbone: str, pretrained: str | None, device: str) -> Availability:
    from oodbench.backbones import create_backbone

    try:
        bb = create_backbone(backbone, pretrained).to(device)
    except Exception as exc:
        return Availability(False, f"weights: {exc}")
    return Availability(True, backbone=bb)


def plan_runs(specs: Iterable[RunSpec], index, *, data_root=None, on_bad: str = "skip", device: str = "cpu",
              check_weights: bool = True, cache_dir=None) -> RunPlan:
    """Which of ``specs`` are not stored yet (``index``: :class:`~oodbench.reporting.tables.RunIndex`), and of
    those which can run here: data resolvable, weights loadable (checked once per backbone; only for benchmarks
    whose data is there, and only when ``check_weights``)."""
    plan = RunPlan()
    missing = []
    for spec in dict.fromkeys(specs):
        if spec.blocked:
            plan.blocked.append(spec)
        elif index.find(spec) is None:
            missing.append(spec)
    for group in group_specs(missing):
        s = group.first
        if s.benchmark not in plan.data:
            plan.data[s.benchmark] = _check_data(s.benchmark, data_root, on_bad, cache_dir)
        data = plan.data[s.benchmark]
        if not data.ok:
            plan.cannot.append((group, data.reason))
            continue
        if check_weights:
            wkey = (s.backbone, s.pretrained)
            if wkey not in plan.weights:
                plan.weights[wkey] = _check_weights(s.backbone, s.pretrained, device)
            if not plan.weights[wkey].ok:
                plan.cannot.append((group, plan.weights[wkey].reason))
                continue
        plan.to_run.append(group)
    return plan


def execute(plan: RunPlan, caches, store, *, device: str = "cpu", quiet: bool = False, batch_size: int = 128,
            num_workers: int | None = None, on_bad: str = "skip") -> tuple[list, list[tuple[Group, str]]]:
    """Run the groups of ``plan`` (weights and resolved data from the plan's checks).

    Returns:
        The PostResults, and the groups that failed with a :class:`~oodbench.errors.UserError` (a setting the
        method refuses), each with its one-line reason; the other groups still run.

    Per-step groups (``RunSpec.step``) obtain the whole SeTAR plan once (a cached search, or a new one), write
    each prefix as a plan file under ``<cache>/plans/prefix-<plan hash>/`` and evaluate it with ``plan_file``.
    """
    from oodbench.orchestration.pipeline import RunSettings, run as run_pipeline
    from oodbench.runtime import seed_everything, set_float32_mode

    set_float32_mode(False)
    results: list = []
    failed: list[tuple[Group, str]] = []
    step_groups: dict[tuple, list[Group]] = {}
    plain = []
    for g in plan.to_run:
        if g.first.step is not None:
            s = g.first
            step_groups.setdefault((s.benchmark, s.backbone, s.pretrained, s.options_json, s.seed), []).append(g)
        else:
            plain.append(g)
    t0 = time.perf_counter()
    n = len(plain) + sum(len(v) for v in step_groups.values())
    done = 0

    def run_one(g: Group, label: str, resolved, bb, backbone, pretrained, method, options, seed) -> None:
        """One group through the pipeline; a UserError is recorded against the group and the sweep goes on."""
        settings = RunSettings(backbone=backbone, pretrained=pretrained, postprocessors=tuple(g.posts),
                               methods=(method,), method_options={method: options}, params=g.params, seed=seed,
                               device=device, quiet=quiet, batch_size=batch_size, num_workers=num_workers,
                               on_bad=on_bad)
        seed_everything(settings.seed)
        try:
            results.extend(run_pipeline(resolved, settings, caches, store, backbone=bb, reuse=True))
        except UserError as exc:
            log.warning("%s: %s", label, exc)
            failed.append((g, str(exc)))
    for g in plain:
        s = g.first
        resolved = plan.data[s.benchmark].resolved
        bb = plan.weights[(s.backbone, s.pretrained)].backbone if (s.backbone, s.pretrained) in plan.weights \
            else _check_weights(s.backbone, s.pretrained, device).backbone
        done += 1
        log.info("[%d/%d] %s", done, n, g.command())
        run_one(g, g.command(), resolved, bb, s.backbone, s.pretrained, s.method, g.method_options(),
                s.seed if s.seed is not None else 0)
    for (bench, backbone, pretrained, _, seed), groups in step_groups.items():
        resolved = plan.data[bench].resolved
        bb = plan.weights[(backbone, pretrained)].backbone if (backbone, pretrained) in plan.weights \
            else _check_weights(backbone, pretrained, device).backbone
        try:
            prefixes = prefix_plans(resolved, bb, groups[0].first, caches, device, seed or 0, on_bad)
        except UserError as exc:
            log.warning("%s: %s", groups[0].command(), exc)
            failed += [(g, str(exc)) for g in groups]
            continue
        for g in sorted(groups, key=lambda g: g.first.step):
            s = g.first
            if s.step not in prefixes:
                log.warning("%s: the plan has %d steps, not %d", s.describe(), len(prefixes) - 1, s.step)
                continue
            done += 1
            log.info("[%d/%d] %s", done, n, s.describe())
            run_one(g, s.describe(), resolved, bb, backbone, pretrained, s.method,
                    {"plan_file": str(prefixes[s.step])}, seed or 0)
    log.info("ran %d group(s), %d run(s) stored, in %.1f s", done, len(results), time.perf_counter() - t0)
    return results, failed


def prefix_plans(resolved, backbone, spec: RunSpec, caches, device: str, seed: int, on_bad: str) -> dict[int, Path]:
    """The plan of ``spec.options`` (cached search or a new one; a plan-producing method: SeTAR) and its prefixes as
    plan files: ``{k: path of the plan of the first k search steps}`` for k = 0 .. number of steps."""
    from oodbench.method import MethodContext, method_class

    method = method_class(spec.method)(**spec.options)
    ctx = MethodContext(backbone=backbone, benchmark=resolved, caches=caches, seed=seed, device=device, on_bad=on_bad)
    method.check(ctx)
    plan, _ = method.obtain_plan(ctx)
    folder = caches.plans / f"prefix-{plan.hash()}-{hash_options(spec.options)}"
    out = {}
    for k in range(len(plan.entries) + 1):
        prefix = plan.prefix(k, prefix={"steps": k, "of": plan.hash(), "options": spec.options})
        path = folder / f"step{k:03d}.json"
        if not path.is_file():
            prefix.save(path)
        out[k] = path
    return out


def hash_options(options: dict[str, Any]) -> str:
    from oodbench.hashing import hash_json

    return hash_json(options, 8)
