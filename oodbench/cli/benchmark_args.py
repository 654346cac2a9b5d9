"""The benchmark options every command that reads images accepts, and their resolution.

``--benchmark NAME --data-root DIR`` picks a registered benchmark; the ad-hoc flags ``--id-test DIR
[--id-val DIR] --ood NAME=DIR [--near-ood NAME=DIR] --classes FILE [--prompt TEMPLATE]`` build one from
folders instead. With neither, the embedded ``digits`` benchmark is used (it needs no data root).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from oodbench.cli.common import parse_named
from oodbench.errors import UserError
from oodbench.options import at_least

DEFAULT_BENCHMARK = "digits"
DATA_ROOT_ENV = "OODBENCH_DATA_ROOT"
_ADHOC = ("id_test", "id_val", "ood", "near_ood", "csid", "classes", "class_map", "classes_by_position", "prompt")


def add_benchmark_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--benchmark``, ``--data-root``, ``--on-bad`` and the ad-hoc benchmark flags to ``parser``."""
    g = parser.add_argument_group("benchmark")
    g.add_argument("--benchmark", default=None, metavar="NAME",
                   help=f"registered benchmark (`oodbench list benchmarks`; default {DEFAULT_BENCHMARK}, "
                        "which needs no data)")
    g.add_argument("--data-root", default=None, metavar="DIR",
                   help=f"folder holding the benchmark's images (default ${DATA_ROOT_ENV}); layout: "
                        "`oodbench data layout NAME`")
    g.add_argument("--on-bad", choices=("skip", "fail"), default="skip",
                   help="unreadable or missing image files: leave them out and report them (skip, default) or stop")
    a = parser.add_argument_group("ad-hoc benchmark (instead of --benchmark)")
    a.add_argument("--id-test", metavar="DIR", help="ID test images, one sub-folder per class")
    a.add_argument("--id-val", metavar="DIR", help="ID validation images (the SeTAR search split), same classes")
    a.add_argument("--ood", action="append", metavar="NAME=DIR", help="a far-OOD image folder (repeatable)")
    a.add_argument("--near-ood", action="append", metavar="NAME=DIR", help="a near-OOD image folder (repeatable)")
    a.add_argument("--csid", action="append", metavar="NAME=DIR",
                   help="a covariate-shifted ID folder (some or all of the ID class folders), scored as ID for the "
                        "full-spectrum metrics (repeatable)")
    a.add_argument("--classes", metavar="FILE",
                   help="class names in label order, one per line (or a benchmark's: imagenet1k, voc); folders are "
                        "matched to them by name")
    a.add_argument("--class-map", metavar="FILE", help="folder<TAB>class name per line, when folder names differ")
    a.add_argument("--classes-by-position", action="store_true",
                   help="name the sorted class folders by position (e.g. ImageNet wnid folders, --classes imagenet1k)")
    a.add_argument("--prompt", metavar="TEMPLATE", help="text prompt with {} for the class name "
                                                        "(default 'a photo of a {}')")


def data_root_from_args(args: argparse.Namespace) -> Path | None:
    root = getattr(args, "data_root", None) or os.environ.get(DATA_ROOT_ENV) or None
    return Path(root).expanduser() if root else None


def spec_from_args(args: argparse.Namespace, val_only: bool = False):
    """``(BenchmarkSpec, data_root)`` chosen by the options, without reading any image list.

    ``val_only``: the command reads only the ID val split and the class names (``oodbench search``): an ad-hoc
    benchmark then needs just ``--id-val`` and ``--classes``.
    """
    from oodbench.benchmark import get_benchmark
    from oodbench.data.adhoc import adhoc_benchmark

    adhoc = [k for k in _ADHOC if getattr(args, k, None)]
    data_root = data_root_from_args(args)
    if adhoc:
        if args.benchmark:
            raise UserError(f"--benchmark {args.benchmark} cannot be combined with the ad-hoc flags "
                            f"({', '.join('--' + k.replace('_', '-') for k in adhoc)}); use one or the other")
        if val_only:
            missing = [f for f, v in (("--id-val", args.id_val), ("--classes", args.classes or args.class_map)) if not v]
            if missing:
                raise UserError(f"ad-hoc benchmark: missing {', '.join(missing)} (this command reads the ID val "
                                "images and the class names)")
            spec = adhoc_benchmark(args.id_test or args.id_val, args.classes, parse_named(args.ood, "--ood", "DIR"),
                                   near_ood=parse_named(args.near_ood, "--near-ood", "DIR"), id_val=args.id_val,
                                   prompt=args.prompt, require_ood=False, **_class_rule(args))
            return spec, None
        missing = [f for f, v in (("--id-test", args.id_test), ("--classes", args.classes or args.class_map)) if not v]
        if missing or not (args.ood or args.near_ood):
            missing += [] if (args.ood or args.near_ood) else ["--ood NAME=DIR"]
            raise UserError(f"ad-hoc benchmark: missing {', '.join(missing)} (needs --id-test DIR, --classes FILE "
                            f"and at least one --ood NAME=DIR)")
        spec = adhoc_benchmark(args.id_test, args.classes, parse_named(args.ood, "--ood", "DIR"),
                               near_ood=parse_named(args.near_ood, "--near-ood", "DIR"), id_val=args.id_val,
                               csid=parse_named(args.csid, "--csid", "DIR"), prompt=args.prompt, **_class_rule(args))
        return spec, None
    name = args.benchmark or DEFAULT_BENCHMARK
    if not args.benchmark and data_root is not None and getattr(args, "data_root", None):
        raise UserError("--data-root needs --benchmark NAME (see `oodbench list benchmarks`)")
    return get_benchmark(name), data_root


def benchmark_from_args(args: argparse.Namespace, roles: tuple[str, ...] | None = None):
    """Resolve the benchmark the options name: a :class:`~oodbench.benchmark.ResolvedBenchmark`.

    Raises:
        UserError / DataError: one-line, actionable (conflicting flags, no data root, missing or short splits).
    """
    from oodbench.data.digests import use_digest_dir
    from oodbench.data.resolve import resolve
    from oodbench.runtime import default_cache_dir

    val_only = roles is not None and set(roles) == {"id_val"}
    spec, data_root = spec_from_args(args, val_only=val_only)
    if not spec.needs_data_root:
        data_root = None
    resolved = resolve(spec, data_root, on_bad=getattr(args, "on_bad", "skip"), roles=roles)
    return use_digest_dir(resolved, Path(getattr(args, "cache_dir", None) or default_cache_dir()) / "digests")


def _class_rule(args: argparse.Namespace) -> dict:
    return {"class_map": args.class_map, "classes_by_position": args.classes_by_position}


def add_extraction_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--precision``, ``--extract-batch-size`` and ``--workers`` (feature extraction settings)."""
    g = parser.add_argument_group("feature extraction")
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="model precision for image features (default fp32, as the official code; others use "
                        "autocast and are recorded in the result and the cache key)")
    g.add_argument("--extract-batch-size", dest="extract_batch_size", type=at_least(1), default=None, metavar="N",
                   help="images per forward pass when extracting features (default 128)")
    g.add_argument("--batch-size", dest="extract_batch_size", type=at_least(1), default=None, metavar="N",
                   help="the same as --extract-batch-size")
    g.add_argument("--decode", choices=("pil", "gpu"), default="pil",
                   help="image decoding: pil = PIL decode + bicubic resize, the official preprocessing "
                        "(default); gpu = JPEGs decoded (nvJPEG), resized and cropped on the device, PIL for "
                        "files it cannot take; pixels differ slightly, so it is recorded and keyed")
    g.add_argument("--workers", type=at_least(0), default=None, metavar="N",
                   help="image-loading worker processes (default: by machine; 0 loads in the main process)")


def extraction_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for :func:`oodbench.features.extract.extract_features` / ``extract_benchmark`` from the
    options of :func:`add_extraction_args`, :func:`add_benchmark_args` (``--on-bad``) and ``--device``."""
    from oodbench.features.extract import DEFAULT_BATCH_SIZE
    from oodbench.runtime import resolve_device

    batch = getattr(args, "extract_batch_size", None)
    batch = DEFAULT_BATCH_SIZE if batch is None else batch
    if batch < 1:
        raise UserError(f"--extract-batch-size must be >= 1, got {batch}")
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 0:
        raise UserError(f"--workers must be >= 0, got {workers}")
    return {"precision": getattr(args, "precision", "fp32"), "decode": getattr(args, "decode", "pil"),
            "batch_size": batch, "num_workers": workers,
            "device": resolve_device(getattr(args, "device", "auto")), "on_bad": getattr(args, "on_bad", "skip")}
