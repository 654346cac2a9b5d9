"""``oodbench data``: where the benchmark images come from, the folder layout, and a check of a data root.

``oodbench data layout [NAME]`` prints every split's folder, list file, image count and origin;
``oodbench data verify --data-root DIR [--benchmark NAME | ad-hoc flags]`` counts the images of every split
against the expected numbers and decodes every file, reporting missing, short, corrupt, truncated, zero-byte
and non-image files by path (exit status 1 when anything is wrong).
"""

from __future__ import annotations


from rich.markup import escape
from rich.table import Table
from rich_argparse import RawDescriptionRichHelpFormatter

from oodbench.cli.benchmark_args import DATA_ROOT_ENV, add_benchmark_args, data_root_from_args, spec_from_args
from oodbench.console import err, out, progress
from oodbench.errors import UserError
from oodbench.options import at_least

_INTRO = """\
oodbench never downloads images: put them under one data root and pass --data-root DIR (or set
${env}). Two layouts can share the same root:

  SeTAR layout (imagenet1k, voc, and the ID splits of ssb_hard) - ImageFolder trees, OOD sets in one
  dummy class folder:
    DATA/ID_ImageNet1K/test/<wnid>/*.JPEG       DATA/ID_ImageNet1K/val/<wnid>/*.JPEG
    DATA/ID_VOC/{{val,test}}/<class>/*.jpg        DATA/OOD_<set>/test/images/...
  OpenOOD v1.5 layout (openood_imagenet1k, ssb_hard) - image lists over image folders:
    DATA/benchmark_imglist/imagenet/*.txt        DATA/images_largescale/<set>/...
    DATA/images_classic/texture/...
  Full-spectrum (imagenet1k_fs, openood_imagenet1k_fs) adds covariate-shifted ID sets, scored as ID:
    DATA/images_largescale/imagenet_{{v2,r}}/ (OpenOOD lists)   DATA/imagenet_sketch/sketch/<wnid>/
    DATA/imagenet-a/<wnid>/ (200 of the 1,000 wnids)
    The lists: {lists}; OpenOOD's scripts/download/download.py
    fetches lists and images.

Where each split comes from (`oodbench data layout NAME` shows per-benchmark tables):
{sources}

Check a data root with `oodbench data verify --data-root DIR [--benchmark NAME]`."""


def _file_specs():
    from oodbench.benchmark import get_benchmark
    from oodbench.registry import names

    specs = []
    for n in names("benchmarks"):
        try:
            spec = get_benchmark(n)
        except Exception:  # a broken plugin must not break `oodbench data --help`
            continue
        specs.append(spec)
    return specs


def _sources_text() -> str:
    seen: dict[tuple[str, str | None], tuple[int | None, str]] = {}
    for spec in _file_specs():
        if not spec.needs_data_root:
            continue
        for _, s in spec.split_specs():
            seen.setdefault((s.path, s.list_file), (s.expected, s.source))
    lines = []
    for (path, lst), (expected, source) in seen.items():
        where = f"DATA/{lst}" if lst and not lst.startswith("pkg:") else f"DATA/{path}"
        count = f"{expected:,}" if expected else "as listed"
        lines.append(f"  - {where} ({count}): {source}")
    return "\n".join(lines)


def _lists_text() -> str:
    return "; ".join(dict.fromkeys(s.lists_source for s in _file_specs() if s.lists_source)) or "none registered"


def add_parser(sub, parents) -> None:
    epilog = escape(_INTRO.format(env=DATA_ROOT_ENV, sources=_sources_text(), lists=_lists_text()))
    p = sub.add_parser("data", parents=parents, help="where benchmark images come from, their layout, and a check",
                       description="Benchmark data: sources, folder layout, verification.", epilog=epilog,
                       formatter_class=RawDescriptionRichHelpFormatter)
    p.set_defaults(handler=lambda args: (p.print_help(), 0)[1])
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", title="subcommands")
    lay = dsub.add_parser("layout", parents=parents, help="folders, image counts and sources of a benchmark's splits",
                          formatter_class=RawDescriptionRichHelpFormatter)
    lay.add_argument("name", nargs="?", default=None, help="benchmark (default: all)")
    lay.set_defaults(handler=run_layout)
    ver = dsub.add_parser("verify", parents=parents, formatter_class=RawDescriptionRichHelpFormatter,
                          help="count and decode every image of a benchmark under a data root",
                          description="Count every split's images against the expected numbers and decode every "
                                      "file. Without --benchmark, every registered benchmark found under the data "
                                      "root is checked. Exit status 1 when something is missing or unreadable.")
    add_benchmark_args(ver)
    ver.add_argument("--quick", action="store_true", help="count files only, do not decode them")
    ver.add_argument("--workers", type=at_least(1), default=None, help="decoding threads (default min(8, CPUs))")
    ver.add_argument("--show", type=at_least(0), default=20, metavar="N", help="list at most N problem files per split")
    ver.set_defaults(handler=run_verify)
    res = dsub.add_parser("restore", parents=parents, formatter_class=RawDescriptionRichHelpFormatter,
                          help="copy the files of a benchmark's shipped split lists from a download into DATA",
                          description="For every split of NAME read through a shipped SeTAR list (imagenet1k: ID val, "
                                      "voc: ID val and test), copy the listed <folder>/<file> from --from DIR to "
                                      "DATA/<split folder>/<folder>/<file>. --from is e.g. the extracted "
                                      "ILSVRC2012_img_train tree (imagenet1k) or GL-MCM's ID_VOC_single (voc).")
    res.add_argument("name", help="benchmark (imagenet1k, voc, ssb_hard)")
    res.add_argument("--from", dest="source", required=True, metavar="DIR", help="folder holding <folder>/<file>")
    res.add_argument("--data-root", required=True, metavar="DIR", help="data root to restore into")
    res.add_argument("--link", action="store_true", help="hard-link instead of copying where possible")
    res.set_defaults(handler=run_restore)


def run_layout(args) -> int:
    from oodbench.benchmark import get_benchmark

    specs = [get_benchmark(args.name)] if args.name else _file_specs()
    for spec in specs:
        table = Table(title=f"{spec.name}: {spec.description}", title_justify="left",
                      caption=f"{len(spec.class_names)} classes; prompt '{spec.prompt}'", caption_justify="left")
        for col in ("split", "role", "group", "images", "location (list)"):
            table.add_column(col, overflow="fold", justify="right" if col == "images" else "left")
        sources = []
        for role, s in spec.split_specs():
            location = s.path if s.format == "array" else f"DATA/{s.path}"
            if s.list_file:
                location += f" ({s.list_file if s.list_file.startswith('pkg:') else 'DATA/' + s.list_file})"
            table.add_row(s.name, str(role), s.group, f"{s.expected:,}" if s.expected else "as listed", location)
            sources.append(f"  {s.name}: {s.source}" + (f" (list SHA-256 {s.list_sha256})" if s.list_sha256 else ""))
        out.print(table)
        out.print(escape("Sources:\n" + "\n".join(sources)) + "\n", highlight=False)
    return 0


def run_verify(args) -> int:
    from oodbench.data.resolve import inspect_splits

    explicit = bool(args.benchmark) or any(getattr(args, k, None) for k in ("id_test", "ood", "near_ood", "classes"))
    data_root = data_root_from_args(args)
    if explicit:
        spec, root = spec_from_args(args)
        if spec.needs_data_root and root is None and args.benchmark:
            raise UserError(f"benchmark '{spec.name}' reads images from a data root: pass --data-root DIR")
        specs = [(spec, root if spec.needs_data_root else None)]
    else:
        if data_root is None:
            raise UserError(f"oodbench data verify needs --data-root DIR (or ${DATA_ROOT_ENV}), or a benchmark flag")
        specs = [(s, data_root) for s in _file_specs() if s.needs_data_root]
    if data_root is not None and not data_root.is_dir():
        raise UserError(f"--data-root {data_root} is not a folder")
    table = Table(title=f"oodbench data verify {data_root or ''}", title_justify="left")
    for col in ("benchmark", "split", "group", "expected", "found", "unreadable", "status"):
        table.add_column(col, overflow="fold", justify="right" if col in ("expected", "found", "unreadable") else "left")
    problems: list[str] = []
    digests: list[str] = []
    absent: list[str] = []
    ok = True
    for spec, root in specs:
        checks = _checks(spec, root, inspect_splits)
        if not explicit and not any(c.found for c in checks):
            absent.append(spec.name)
            continue
        for c in checks:
            bad = [] if args.quick or c.source is None else _decode(c, args.workers)
            status = "ok" if not (c.problem or c.missing or bad) else "missing" if c.found == 0 else "problem"
            ok &= status == "ok"
            table.add_row(spec.name, c.split.name, c.split.group, f"{c.split.expected:,}" if c.split.expected else "-",
                          f"{c.found:,}", "-" if args.quick else f"{len(bad):,}",
                          f"[green]{status}[/]" if status == "ok" else f"[red]{status}[/]")
            problems += _problem_lines(c, bad, args.show)
            if c.list_sha256:
                digests.append(f"{spec.name} / {c.split.name}: {c.split.list_file} SHA-256 {c.list_sha256}"
                               + (" (pinned)" if c.split.list_sha256 else ""))
    if table.rows:
        out.print(table)
    for line in digests:
        out.print(escape(line), highlight=False, soft_wrap=True)
    for line in problems:
        out.print(escape(line), highlight=False, soft_wrap=True)
    if absent:
        err.print(escape(f"not found under {data_root}: {', '.join(absent)} (see `oodbench data layout NAME`)"))
    if not table.rows:
        err.print(escape(f"no registered benchmark found under {data_root}; see `oodbench data --help`"))
        return 1
    return 0 if ok else 1


def run_restore(args) -> int:
    from pathlib import Path

    from oodbench.data.restore import restore_from_list
    from oodbench.benchmark import PKG_PREFIX, get_benchmark

    spec = get_benchmark(args.name)
    splits = [s for _, s in spec.split_specs() if s.format == "jsonlist" and (s.list_file or "").startswith(PKG_PREFIX)]
    if not splits:
        raise UserError(f"benchmark '{spec.name}' has no split read through a shipped list; nothing to restore")
    if not Path(args.source).is_dir():
        raise UserError(f"--from {args.source} is not a folder")
    ok = True
    for s in splits:
        done, missing = restore_from_list(spec.list_path(s.list_file, None), args.source, Path(args.data_root) / s.path,
                                          link=args.link)
        ok &= not missing
        out.print(escape(f"{s.name}: {done:,} of {done + len(missing):,} listed files in {Path(args.data_root) / s.path}"
                         + (f"; {len(missing):,} not found under {args.source}, e.g. {missing[0]}" if missing else "")),
                  highlight=False, soft_wrap=True)
    return 0 if ok else 1


def _checks(spec, root, inspect_splits):
    if spec.needs_data_root:
        return inspect_splits(spec, root)
    from oodbench.data.resolve import SplitCheck

    resolved = spec.resolve(None)
    return [SplitCheck(split.role, s, s.path, source=split.source, listed=len(split.source))
            for split, (_, s) in zip(resolved.splits(), spec.split_specs())]


def _decode(check, workers) -> list[tuple[str, str]]:
    from oodbench.data.sources import FileListSource
    from oodbench.data.verify import check_files

    src = check.source
    if not isinstance(src, FileListSource):
        return []
    with progress() as prog:
        task = prog.add_task(f"decoding {check.split.name}", total=len(src))
        return check_files((src.path(i) for i in range(len(src))), workers, lambda k: prog.advance(task, k))


def _problem_lines(check, bad, show: int) -> list[str]:
    lines = []
    if check.problem:
        lines.append(check.problem)
    missing = check.missing if check.found else []  # nothing there at all: the problem line says it
    for path in missing[:show]:
        lines.append(f"  missing: {path}")
    if len(missing) > show:
        lines.append(f"  ... and {len(check.missing) - show:,} more missing files")
    for path, reason in bad[:show]:
        lines.append(f"  unreadable: {path} ({reason})")
    if len(bad) > show:
        lines.append(f"  ... and {len(bad) - show:,} more unreadable files")
    return lines
