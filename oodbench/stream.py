"""The declared test-time protocol: how a score that adapts to the test stream is fed and reported.

A postprocessor declaring ``test_time = True`` (AdaNeg) keeps a state that evolves with every batch it scores,
so its numbers depend on the order of the test images. The benchmark therefore feeds it declared streams:

* **one stream per OOD set**, as the reference evaluator of AdaNeg does (OpenOOD-VLM ``ood_clip_tta``): the ID
  test images followed by the images of that OOD set, shuffled, scored batch by batch from a fresh state (the
  memory is reset for every OOD set; sets never share a memory);
* the order is ``torch.randperm(N_id + N_ood)`` under a fresh generator seeded with the order seed, cut into
  consecutive batches of the score's stream batch size (the last one smaller), the reference's 256 for AdaNeg.
  (It is not the order of a ``DataLoader(shuffle=True)`` given that seeded generator: the loader's iterator first
  draws a base seed from it, and only then does its sampler draw the permutation.) A score may declare its own
  order instead with a ``stream_permutation(n, seed)`` method (AdaNeg's ``stream_order=official``: the release
  evaluator's order);
* the protocol runs for several order seeds (the score's ``stream_protocol()["seeds"]``, AdaNeg: 0, 1, 2). The
  metrics of each order are computed per OOD set as for a static score; the result's metrics are their **mean over
  the orders** and the record keeps, under ``extra["stream"]``, the seeds, the batch size, the metrics of every
  order and their population standard deviation (``numpy.std``, ddof 0);
* the per-image scores stored with the run are those of the **first order**. Because every OOD set has its own
  stream, the ID images get one score per OOD set: ``"id/<set>"``; ``"id"`` holds those of the first OOD set.

Static scores never come here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.metrics import METRICS, evaluate

PROTOCOL = "one stream per OOD set (ID test + that set), seeded shuffle, fresh state per stream"


def stream_order(n: int, seed: int) -> np.ndarray:
    """The positions of the ``n`` stream images in the order they are fed: ``torch.randperm`` under ``seed``."""
    import torch

    return torch.randperm(int(n), generator=torch.Generator().manual_seed(int(seed))).numpy()


def run_stream(post, features: Features, order: np.ndarray, batch_size: int) -> np.ndarray:
    """Feed ``features`` to ``post.score_stream`` in ``order`` by batches; return the scores in the input's order."""
    batches = [features.subset(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    outs = post.score_stream(batches)
    scores = np.empty(len(order), dtype=np.float64)
    scores[order] = np.concatenate([np.asarray(o, dtype=np.float64) for o in outs]) if outs else []
    return scores


def check_protocol(protocol: dict[str, Any], name: str) -> tuple[list[int], int]:
    """The validated (seeds, batch size) of a score's ``stream_protocol()``."""
    seeds, batch = protocol.get("seeds"), protocol.get("batch_size")
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise UserError(f"{name}: stream_seeds={protocol.get('seeds')!r} must be distinct non-negative integers "
                        "(e.g. --param {name}.stream_seeds=0,1,2)".replace("{name}", name))
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise UserError(f"{name}: stream batch size {batch!r} must be a positive integer")
    return [int(s) for s in seeds], int(batch)


@dataclass
class StreamResult:
    """Metrics (mean over orders), first-order scores and what the record keeps about the protocol."""

    metrics: dict[str, dict[str, float]]
    id_scores: np.ndarray
    ood_scores: dict[str, np.ndarray]
    extra_scores: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def evaluate_streams(post, id_feats: Features, ood_feats: dict[str, Features], name: str = "",
                     seeds: Sequence[int] | None = None, batch_size: int | None = None) -> StreamResult:
    """Run the declared protocol of the test-time score ``post`` (fitted) on ID test and each OOD set."""
    name = name or getattr(post, "registry_name", "") or type(post).__name__
    declared = post.stream_protocol()
    seeds, batch_size = check_protocol({"seeds": declared["seeds"] if seeds is None else seeds,
                                        "batch_size": declared["batch_size"] if batch_size is None else batch_size},
                                       name)
    n_id = len(id_feats)
    permute = getattr(post, "stream_permutation", None) or stream_order
    per_order: dict[str, dict[str, dict[str, float]]] = {}
    first: dict[str, np.ndarray] = {}
    for k, seed in enumerate(seeds):
        rows: dict[str, dict[str, float]] = {}
        for set_name, ood in ood_feats.items():
            both = Features.concat([id_feats, ood], name=f"{id_feats.name}+{set_name}")
            scores = run_stream(post, both, np.asarray(permute(len(both), seed)), batch_size)
            rows[set_name] = evaluate(scores[:n_id], {set_name: scores[n_id:]})[set_name]
            if k == 0:
                first[set_name] = scores
        rows["average"] = {m: float(np.mean([r[m] for n, r in rows.items()])) for m in METRICS}
        per_order[str(seed)] = rows
    keys = list(next(iter(per_order.values())))
    mean = {r: {m: float(np.mean([o[r][m] for o in per_order.values()])) for m in METRICS} for r in keys}
    std = {r: {m: float(np.std([o[r][m] for o in per_order.values()])) for m in METRICS} for r in keys}
    names = list(ood_feats)
    id_by_set = {n: first[n][:n_id] for n in names}
    order = ("the score's declared order (" + str(declared["order"]) + ")" if declared.get("order") not in
             (None, "seeded") else "torch.randperm(N_id + N_ood) with a generator seeded by the order seed")
    record = {"protocol": PROTOCOL, "seeds": seeds, "batch_size": batch_size, "order": order,
              "metrics": "mean over the orders; std: population std (ddof 0) over the orders",
              "scores": f"per-image scores of the first order (seed {seeds[0]}); id/<set>: ID scores of each "
                        "set's stream, id: those of the first set",
              "per_order": per_order, "std": std}
    return StreamResult(mean, id_by_set[names[0]], {n: first[n][n_id:] for n in names},
                        {f"id/{n}": s for n, s in id_by_set.items()}, record)
