"""SeTAR search options shared by ``oodbench search`` and ``oodbench run --method setar``.

Every option defaults to None, so that only what the user passes overrides the published preset of the
(backbone, benchmark) pair (paper Table 10 / the official configs).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_search_args(parser: argparse.ArgumentParser, batch_flags: tuple[str, ...] = ("--search-batch-size",)) -> None:
    g = parser.add_argument_group("SeTAR search (defaults: the paper's preset for the backbone and benchmark)")
    g.add_argument("--searcher", default=None, choices=("setar-s", "mis", "les"),
                   help="greedy search order: SeTAR-S (vision top->bottom then text), MIS (interleaved), "
                        "LES (layer-exhaustive)")
    g.add_argument("--weight-type", default=None, choices=("W_q", "W_k", "W_v", "W_o", "W_up", "W_down", "W_p"),
                   help="weight searched in every block (default W_up)")
    g.add_argument("--modality", default=None, choices=("both", "vision", "text"), help="towers searched")
    g.add_argument("--lambda", dest="lam", type=float, default=None, help="weight of the LoCoOp OOD term")
    g.add_argument("--topk", dest="top_k", type=int, default=None, help="K of the top-K OOD-patch mask")
    g.add_argument(*batch_flags, dest="search_batch_size", type=int, default=None,
                   help="batch size of the loss aggregation (official: 512; Swin 384)")
    g.add_argument("--prune", default=None, choices=("minor", "principal", "random"),
                   help="which singular components are removed (default minor)")
    g.add_argument("--ratios", default=None, help="candidate ratios, comma-separated (default 0,0.05,...,0.40)")
    g.add_argument("--include-projection", action="store_true", default=None,
                   help="also search the projections W_p before each tower's blocks (paper Table 4; off in SeTAR)")
    g.add_argument("--tf32", action="store_true",
                   help="allow TF32 tensor cores on CUDA (about 3x faster on an H100; not bit-exact fp32, recorded)")


def search_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {
        "searcher": args.searcher,
        "weight_type": args.weight_type,
        "modality": args.modality,
        "lam": args.lam,
        "top_k": args.top_k,
        "batch_size": args.search_batch_size,
        "prune": args.prune,
        "include_projection": args.include_projection,
    }
    if args.ratios:
        from oodbench.errors import UserError

        try:
            out["ratios"] = tuple(float(r) for r in args.ratios.split(","))
        except ValueError:
            raise UserError(f"--ratios expects comma-separated numbers, got '{args.ratios}'") from None
    return {k: v for k, v in out.items() if v is not None}
