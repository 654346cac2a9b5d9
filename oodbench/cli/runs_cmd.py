"""``oodbench runs list|show|compare|import``: the stored runs of the results store."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich_argparse import RawDescriptionRichHelpFormatter, RichHelpFormatter

from oodbench.cli.common import add_command, parse_named, results_root
from oodbench.console import out, print_table
from oodbench.errors import UserError
from oodbench.metrics import CONVENTIONS, METRICS
from oodbench.options import at_least
from oodbench.cli.metrics_cmd import add_score_file_args

IMPORT_MARK = "‡"  # oodbench.results.importer.MARK (not imported here: `oodbench --help` stays light)
#: The worked example of `runs import --help`: NeurIPS Table 1, ImageNet1K / MCM Score / Vanilla MCM.
IMPORT_EXAMPLE = """Worked example: NeurIPS Table 1, row ImageNet1K / MCM Score / Vanilla MCM, from the official SeTAR
code's score files (test_ood.py writes scores_<set>_test.csv, one column per score, negated: higher = OOD):

  oodbench runs import --benchmark imagenet1k --backbone clip_vit_b16 --method none --post mcm \\
      --id scores_ID_ImageNet1K_test.csv \\
      --ood iNaturalist=scores_OOD_iNaturalist_test.csv --ood SUN=scores_OOD_Sun_test.csv \\
      --ood Places=scores_OOD_Places_test.csv --ood Texture=scores_OOD_Texture_test.csv \\
      --column mcm_score --higher-is ood
  oodbench tables --table 1 --no-run

The same files with --post glmcm --column gl_mcm_score fill the GL-MCM row; the files of a SeTAR run with
--method setar (and --plan FILE) the SeTAR rows; --benchmark voc with its six OOD sets the Pascal-VOC rows.
After the import the command says which table cells the run fills, or why it fills none."""


def add_parser(sub, parents) -> None:
    p = sub.add_parser("runs", help="list, show, compare and import stored runs",
                       description="The runs of the results store (--results-root): list them, show one, compare "
                                   "several side by side, or import per-image score files written by other code.",
                       formatter_class=RichHelpFormatter)
    p.set_defaults(handler=lambda args: p.print_help() or 0, verbose=0, quiet=0, plugin=None)
    runs = p.add_subparsers(dest="runs_command", metavar="ACTION", title="actions")

    ls = add_command(runs, "list", parents, help="a table of the stored runs, newest first")
    ls.add_argument("--benchmark", default=None, help="only this benchmark (shell wildcards allowed)")
    ls.add_argument("--backbone", default=None, help="only this backbone (wildcards allowed)")
    ls.add_argument("--method", default=None, help="only this method: none, setar, ... (wildcards allowed)")
    ls.add_argument("--post", default=None, help="only this postprocessor (wildcards allowed)")
    ls.add_argument("--limit", type=at_least(1), default=None, metavar="N", help="at most the N newest runs")
    ls.add_argument("--check", action="store_true",
                    help="list instead the run folders whose result.json cannot be read, and why (exit 1 when there "
                         "are any); `runs list` and the leaderboard leave them out with a warning")
    ls.set_defaults(handler=run_list)

    show = add_command(runs, "show", parents, help="every metric per OOD set, the settings and hashes of one run")
    show.add_argument("run", metavar="RUN", help="run id, a unique prefix of one, or a run folder")
    show.set_defaults(handler=run_show)

    cmp_ = add_command(runs, "compare", parents, help="runs side by side per OOD set, differences to the first")
    cmp_.add_argument("runs", nargs="+", metavar="RUN", help="two or more runs (id, unique prefix or folder)")
    cmp_.add_argument("--metrics", default="fpr95,auroc", metavar="M[,M...]",
                      help=f"metrics to show (default fpr95,auroc; any of {','.join(METRICS)})")
    cmp_.set_defaults(handler=run_compare)

    imp = add_command(
        runs, "import", parents, help="store per-image score files written by other code as a run",
        description="Read per-image score files (.npy, .npz, .csv/.tsv with a header), compute every metric with\n"
                    "oodbench's metric code and store a run that fills table cells like a run of oodbench would.\n"
                    "Checked before anything is written: the names against the registries (with suggestions), --param\n"
                    "against the score's signature (the rest take the score's defaults), the OOD set names, groups and\n"
                    "image counts against the benchmark (all its OOD sets, or --partial), the precision. --seed N\n"
                    "records the seed (per-seed cells), --id-accuracy / --classify-accuracy the accuracies of\n"
                    "Table 7 (the paper text's / the official protocol). Values of imported\n"
                    f"runs are marked {IMPORT_MARK} in every table and on the leaderboard.",
    )
    imp.formatter_class = RawDescriptionRichHelpFormatter
    imp.epilog = IMPORT_EXAMPLE
    add_score_file_args(imp)
    imp.add_argument("--backbone", required=True, help="the backbone that produced the scores (`oodbench list "
                                                       "backbones`)")
    imp.add_argument("--benchmark", required=True,
                     help="the benchmark the scores are of (`oodbench list benchmarks`), or 'adhoc' for OOD sets of "
                          "your own (names and counts unchecked)")
    imp.add_argument("--method", required=True, help="the method: none, setar, setar-ft, lora, locoop")
    imp.add_argument("--post", required=True, help="the postprocessor (score) that produced them")
    imp.add_argument("--group", action="append", default=[], metavar="NAME=near|far",
                     help="the group of an OOD set of an adhoc import (repeatable; default far); a registered "
                          "benchmark's sets keep their own groups")
    imp.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a hyperparameter of the score that produced the files (repeatable; NAME=VALUE or "
                          "POST.NAME=VALUE), e.g. tau=1 for mcm; the others take the score's defaults")
    imp.add_argument("--id-set", default=None, metavar="NAME",
                     help="name of the ID set (default: the benchmark's ID test split; adhoc: the ID file's stem)")
    imp.add_argument("--pretrained", default=None, metavar="TAG|PATH", help="the backbone's weights, if known")
    imp.add_argument("--plan", default=None, metavar="FILE", help="the SeTAR plan JSON the scores were made with")
    imp.add_argument("--precision", default="fp32", metavar="fp32|fp16|bf16",
                     help="the precision the other code ran at (default fp32, as the official code; table cells "
                          "take fp32 runs)")
    imp.add_argument("--id-accuracy", default=None, metavar="FRACTION",
                     help="top-1 accuracy on the ID test set as a fraction, e.g. 0.6407 (fills Table 7)")
    imp.add_argument("--classify-accuracy", action="append", default=[], metavar="SPLIT=FRACTION",
                     help="accuracy of a split under the official Table 7 protocol (SeTAR's test_classify.py), e.g. "
                          "'ImageNet-1K test=0.6407', SUN=..., Places=..., Texture=... (repeatable; fills the "
                          "published Table 7)")
    imp.add_argument("--partial", action="store_true",
                     help="accept files for only some of the benchmark's OOD sets, or with other image counts than "
                          "its splits (recorded; such a run fills no Average cell)")
    imp.add_argument("--note", default="", help="free text kept in the record")
    imp.set_defaults(handler=run_import)


def _store(args):
    from oodbench.results import ResultsStore

    return ResultsStore(results_root(args))


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def _pm(rec, row: str, metric: str) -> str:
    """x100 value of ``metric`` in ``row``, ``± std`` over the stream orders for a test-time run."""
    from oodbench.results.runs import order_std

    value = rec.metrics.get(row, {}).get(metric)
    std = order_std(rec, row, metric)
    return _pct(value) + ("" if std is None or value is None else f" ± {100 * std:.2f}")


def run_list(args) -> int:
    from oodbench.results.importer import is_imported
    from oodbench.results.runs import is_test_time, list_runs

    store = _store(args)
    if args.check:
        return _check(store)
    runs = list_runs(store, limit=args.limit, benchmark=args.benchmark, backbone=args.backbone, method=args.method,
                     post=args.post)
    table = Table(title=f"Stored runs under {escape(str(store.root))} (newest first)", title_justify="left",
                  caption=f"{len(runs)} run(s)"
                          + (f" ({len(store.left_out)} unreadable run folder(s) left out: `runs list --check`)"
                             if store.left_out else "")
                          + f"; FPR95, AUROC: averages x100 over each run's OOD sets; FPR95: {CONVENTIONS['fpr95']}"
                          + ("; test-time scores: mean ± std over their stream orders (`runs show RUN` names them)"
                             if any(is_test_time(r.record) for r in runs) else "")
                          + (f"; {IMPORT_MARK}: imported (`oodbench runs import`; `runs show RUN` names the files)"
                             if any(is_imported(r.record) for r in runs) else ""),
                  caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    table.add_column("id", no_wrap=True)
    table.add_column("time (UTC)", min_width=10)
    for name in ("benchmark", "backbone", "method", "post"):
        table.add_column(name, overflow="fold")
    for name in ("FPR95↓", "AUROC↑"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in runs:
        rec = r.record
        table.add_row(r.run_id, rec.time[:16].replace("T", " "), rec.benchmark,
                      rec.backbone.get("name", "?"), rec.method, rec.postprocessor.get("name", "?"),
                      *(_pm(rec, "average", m) + (f" {IMPORT_MARK}" if is_imported(rec) else "")
                        for m in ("fpr95", "auroc")))
    # piped output is not cut to 80 columns: ids stay whole and copyable
    console = out if out.is_terminal else Console(width=max(out.width, 130), soft_wrap=False)
    _print_run_list(table, console)
    return 0


def _print_run_list(table, console) -> None:
    """The run list whole when it fits; else only the id (time-benchmark-backbone-method-score-hash, never
    wrapped) and the numbers; never a cut number (oodbench.console.print_table)."""
    from oodbench.console import fit_table, with_columns

    if len(fit_table(table, console.width, console=console)) > 1:
        heads = [str(c.header) for c in table.columns]
        table = with_columns(table, [heads.index(h) for h in ("id", "FPR95↓", "AUROC↑")])
        table.caption = (f"{table.caption}; id: local time-benchmark-backbone-method-score-hash (a wider terminal "
                         "shows them as columns)")
    print_table(table, console=console)


def _check(store) -> int:
    """``runs list --check``: every unreadable run folder with its reason; 0 when there is none, else 1."""
    bad = store.unreadable()
    if not bad:
        out.print(f"all {len(store.run_ids())} run folder(s) under {escape(str(store.root))} are readable",
                  highlight=False, soft_wrap=True)
        return 0
    for run_id, reason in bad:
        out.print(f"{escape(str(store.root / run_id))}: {escape(reason)}", highlight=False, soft_wrap=True)
    out.print(f"{len(bad)} of {len(store.run_ids())} run folder(s) unreadable: fix or remove their result.json",
              highlight=False, soft_wrap=True)
    return 1


def run_show(args) -> int:
    from oodbench.results.importer import is_imported
    from oodbench.reporting.render import id_label, metrics_table, stream_stds
    from oodbench.results.runs import find_run, fsood_of, order_std, params_text, protocol_text, stream_of

    run = find_run(_store(args), args.run)
    rec = run.record
    info = Table(title=f"Run {escape(run.run_id)}", title_justify="left", show_header=False, box=None)
    info.add_column(style="bold")
    info.add_column()
    plan = rec.plan
    rows = [
        ("folder", str(run.path)),
        ("time", rec.time),
        ("benchmark", f"{rec.benchmark} ({id_label(rec.id_set)}: {rec.counts.get('id', '?')} images)"),
        ("OOD sets", ", ".join(f"{n} ({g}, {rec.counts.get('ood', {}).get(n, '?')})" for n, g in rec.ood_sets.items())),
        ("backbone", rec.backbone.get("name", "?")),
        ("weights", f"{rec.backbone.get('pretrained') or '-'}  hash {rec.backbone.get('weights_hash') or '-'}"),
        ("method", f"{rec.method}  plan hash {plan.get('hash') or '-'}"),
    ]
    active = [e for e in plan.get("entries", []) or [] if isinstance(e, dict) and e.get("ratio")]
    if active:
        rows.append(("plan", " ".join(f"{e['tower'][0]}{e['weight_type']}{e.get('layer', '')}:{e['ratio']:g}"
                                      for e in active) + f"  (prune {plan.get('prune', 'minor')})"))
    post = rec.postprocessor
    rows.append(("postprocessor", f"{post.get('name', '?')}  {params_text(post.get('params'))}".rstrip()))
    if post.get("aps"):
        rows.append(("APS", json.dumps(post["aps"].get("chosen"), sort_keys=True)))
    if post.get("fit_split"):
        rows.append(("fit on", f"{post['fit_split']} ({post.get('fit_count')})"))
    if stream_of(rec) is not None:
        stream = stream_of(rec)
        rows.append(("protocol", f"{protocol_text(rec)}; {stream.get('protocol', '')}; metrics: mean ± population "
                                 "std over the orders"))
    fs = fsood_of(rec)
    if fs is not None:
        rows.append(("csID", ", ".join(f"{n} ({v.get('n', '?')}, accuracy {_pct(v.get('accuracy'))})"
                                       for n, v in (fs.get("csid") or {}).items()) or "-"))
    if rec.id_accuracy is not None:
        rows.append(("ID accuracy", f"{100 * rec.id_accuracy:.2f}"))
    skipped = {k: v for k, v in (rec.counts.get("skipped") or {}).items() if v}
    if skipped:
        rows.append(("skipped images", ", ".join(f"{k}: {v}" for k, v in skipped.items())))
    rows += [("precision", rec.precision), ("seed", str(rec.seed)), ("device", rec.device or "-"),
             ("code", rec.code_version or "-")]
    from oodbench.provenance import describe

    rows += describe(rec.provenance)
    if is_imported(rec):
        imp = rec.extra["import"]
        files = imp.get("files", {})
        rows.append(("imported", f"higher = {imp.get('higher_is')} in the files; {imp.get('orientation', '')}"
                                 + (f"; column {imp['column']}" if imp.get("column") else "")))
        id_file = files.get("id", {})
        rows.append(("  ID file", f"{id_file.get('path')}  sha256 {id_file.get('sha256')}"))
        for name, f in files.get("ood", {}).items():
            rows.append((f"  {name} file", f"{f.get('path')}  sha256 {f.get('sha256')}"))
        partial = imp.get("partial") or {}
        if partial.get("missing_sets"):
            rows.append(("  partial", f"OOD sets not imported: {', '.join(partial['missing_sets'])} (no Average cell)"))
        for split, c in (partial.get("counts") or {}).items():
            rows.append(("  partial", f"{split}: {c.get('found')} scores, the split has {c.get('expected')} images"))
        if imp.get("note"):
            rows.append(("  note", imp["note"]))
    for k, v in rows:
        info.add_row(k, escape(str(v)))
    out.print(info)
    # piped output of a test-time run (value ± std) is not cut to 80 columns, as in `runs list`
    console = out if out.is_terminal or stream_of(rec) is None else Console(width=max(out.width, 150),
                                                                               soft_wrap=False)
    print_table(metrics_table(rec.metrics, title="Metrics (x100)", groups=rec.ood_sets, stds=stream_stds(rec),
                              caption=f"FPR95: {rec.conventions.get('fpr95', CONVENTIONS['fpr95'])}"
                                      + ("; ± population std over the stream orders" if stream_of(rec) else "")),
                keep=2, console=console)
    if fs is not None:
        fs_rows = {k: v for k, v in fs["metrics"].items() if isinstance(v, dict)}
        fs_stds = ({k: {m: order_std(rec, f"fsood:{k}", m) for m in v} for k, v in fs_rows.items()}
                   if stream_of(rec) is not None else None)
        print_table(metrics_table(fs_rows, title="Full-spectrum metrics (x100): OOD vs ID test ∪ every csID set"
                                  + (" (± std over the stream orders)" if fs_stds else ""),
                                  groups=rec.ood_sets, stds=fs_stds, metrics=tuple(m for m in METRICS if all(
                                      m in v for v in fs["metrics"].values() if isinstance(v, dict)))),
                    keep=2, console=console)
    return 0


def run_compare(args) -> int:
    from oodbench.reporting.render import HEADERS
    from oodbench.results.runs import compare, describe, find_run, order_std, protocol_text

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise UserError(f"--metrics: unknown metric(s) {', '.join(bad) or '(none given)'}; use {', '.join(METRICS)}")
    store = _store(args)
    runs = [find_run(store, ref) for ref in args.runs]
    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    records = [r.record for r in runs]
    data = compare(records, metrics)
    labels = [chr(ord("A") + i) if i < 26 else f"R{i}" for i in range(len(runs))]
    table = Table(title="Runs compared (x100; in brackets: difference to A)", title_justify="left")
    table.add_column("OOD set", style="bold", no_wrap=True)
    table.add_column("group", no_wrap=True)
    for label in labels:
        for m in metrics:
            table.add_column(f"{label}\n{HEADERS.get(m, m)}", justify="right", no_wrap=True)
    groups = {}
    for rec in records:
        for k, v in rec.ood_sets.items():
            groups.setdefault(k, v)
    for name, per_run in data.items():
        if name == "average":
            table.add_section()
        cells = [name, groups.get(name, "")]
        for i, row in enumerate(per_run):
            for m in metrics:
                c = row[m]
                text = _pct(c.value)
                std = order_std(records[i], name, m)
                if std is not None and c.value is not None:
                    text += f" ± {100 * std:.2f}"
                if c.diff is not None:
                    text += f" ({100 * c.diff:+.2f})"
                cells.append(text)
        table.add_row(*cells)
    legend = [f"{label}: {r.run_id} — {describe(r.record)} on {r.record.benchmark}"
              + (f" ({protocol_text(r.record)}; ± std over the orders)" if protocol_text(r.record) else "")
              for label, r in zip(labels, runs)]
    sets = {tuple(sorted(k for k in rec.metrics if k != "average")) for rec in records}
    if len(sets) > 1:
        legend.append("note: the runs have different OOD sets; each average is over the run's own sets")
    table.caption = escape("\n".join(legend))
    table.caption_justify = "left"
    print_table(table, keep=2, group=len(metrics))  # too wide: split by run, never a number cut
    return 0


def _parse_params(items: list[str]) -> dict:
    params = {}
    for name, value in parse_named(items, "--param", "VALUE").items():
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def _plan_record(path: str, method: str) -> dict:
    """The plan file as recorded: parsed and hashed by the modifier registered under the method's name when it
    offers ``plan_from_dict`` (SeTAR), else the JSON as it is."""
    import json

    from oodbench.errors import UserError
    from oodbench.registry import get, registry

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--plan {path}: not a readable JSON plan ({exc})") from None
    record = data if isinstance(data, dict) else {"entries": data}
    if method in registry("modifiers") and hasattr(get("modifiers", method), "plan_from_dict"):
        plan = get("modifiers", method).plan_from_dict(data)
        record = plan.to_dict() | {"hash": plan.hash()}
    return record | {"file": str(Path(path).resolve())}


def run_import(args) -> int:
    from oodbench.results.importer import import_run, resolve_names

    ood_files = parse_named(args.ood, "--ood")
    groups = parse_named(args.group, "--group", "near|far")
    params = _parse_params(args.param)
    method = resolve_names(args.benchmark, args.backbone, args.method, args.post)[2]  # bad names fail first
    plan = _plan_record(args.plan, method) if args.plan else None
    path = import_run(_store(args), args.id, ood_files, benchmark=args.benchmark, backbone=args.backbone,
                      method=args.method, postprocessor=args.post, column=args.column, higher_is=args.higher_is,
                      groups=groups, id_set=args.id_set, params=params, pretrained=args.pretrained, plan=plan,
                      precision=args.precision, note=args.note, seed=args.seed, id_accuracy=args.id_accuracy,
                      partial=args.partial, classify=parse_named(args.classify_accuracy, "--classify-accuracy",
                                                                 "FRACTION"))
    from oodbench.results import ResultsStore
    from oodbench.reporting.render import metrics_table

    rec = ResultsStore(path.parent).load(path.name)
    out.print(metrics_table(rec.metrics, title=f"Imported as run {escape(path.name)} (x100)", groups=rec.ood_sets,
                            caption=f"file orientation: higher = {args.higher_is}; stored higher = ID; "
                                    f"FPR95 = {CONVENTIONS['fpr95']}"))
    _say_cells(rec)
    return 0


def _say_cells(rec) -> None:
    """Which paper-table cells the imported run fills (or why none), so that a first import is not a silent miss."""
    from oodbench.reporting.coverage import cells_filled, why_no_cell

    params = ", ".join(f"{k}={v!r}" for k, v in (rec.postprocessor.get("params") or {}).items()) or "none"
    out.print(f"recorded: {rec.benchmark} / {rec.backbone.get('name')} / {rec.method} / "
              f"{rec.postprocessor.get('name')} ({params}), precision {rec.precision}, seed {rec.seed}"
              + (f", ID accuracy {100 * rec.id_accuracy:.2f}" if rec.id_accuracy is not None else ""),
              highlight=False, soft_wrap=True)
    partial = (rec.extra.get("import") or {}).get("partial")
    if partial:
        out.print(f"partial import: {escape(json.dumps(partial))} — no Average cell is filled from it",
                  highlight=False, soft_wrap=True)
    filled = cells_filled(rec)
    if filled:
        out.print("fills table cells (marked " + IMPORT_MARK + "): " + "; ".join(
            f"{edition} {key} ({n})" for edition, key, n in filled) + " — `oodbench tables --no-run` renders them",
                  highlight=False, soft_wrap=True)
    else:
        out.print(f"fills no table cell: {escape(why_no_cell(rec))}", highlight=False, soft_wrap=True)

