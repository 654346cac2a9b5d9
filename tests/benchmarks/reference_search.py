"""A plain SeTAR searcher that follows the official algorithm step by step, for parity tests and benchmarks.

Original code: X1AOX1A/SeTAR ``src/svd_ood/svd_ood/searchers.py`` (``VisualTextSearch``,
``ModalityInterleavedSearch``, ``LayerExhaustiveSearch``), ``model_hub.py`` (``compute_metrics_loss``) and
``src/peft/peft/tuners/modified_lora/model.py`` (``svd_init``). For every candidate it reloads the pristine
weights (from a checkpoint file written once, as the official code reloads the pretrained model; or from memory
with ``reload="memory"``), recomputes the SVD of every accepted weight and of the candidate from those pristine
weights, runs both towers on the whole validation set, and computes the LoCoOp loss batch by batch with the
``np.mean`` of per-image repeats. Nothing is cached. Deliberately independent of ``oodbench.methods.setar``
except for looking up weights.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _find(backbone, tower, weight_type, layer):
    for t in backbone.target_modules(weight_type, tower):
        if t.layer == layer:
            return t
    raise KeyError((tower, weight_type, layer))


def _prune(backbone, settings, prune, seed):
    """Official ``apply_svd_prune`` + ``svd_init``: rank-0 modules are skipped, the rest rebuilt from kept factors."""
    for tower, weight_type, layer, ratio in settings:
        t = _find(backbone, tower, weight_type, layer)
        w = t.get().float()
        full = min(w.shape)
        rank = int(ratio) if ratio >= 1 else round(full * ratio)
        assert rank != full
        if rank == 0:
            continue
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        v = vh.t()
        if prune == "minor":
            idx = s.size(0) - rank
            u0, s0, v0 = u[:, :idx], s[:idx], v[:, :idx]
        elif prune == "principal":
            u0, s0, v0 = u[:, rank:], s[rank:], v[:, rank:]
        else:
            perm = torch.randperm(s.size(0), generator=torch.Generator().manual_seed(seed))
            u, s, v = u[:, perm.to(u.device)], s[perm.to(u.device)], v[:, perm.to(u.device)]
            u0, s0, v0 = u[:, rank:], s[rank:], v[:, rank:]
        t.set(torch.mm(u0, torch.mm(torch.diag(s0), v0.t())))


def _loss(logits_global, logits_local, labels, lam, top_k):
    """One batch of ``compute_metrics_loss`` (CLIP) / the Swin variant; ``logits_local`` None = ID loss only."""
    loss_id = F.cross_entropy(logits_global, labels)
    pred = logits_global.argmax(-1)
    acc = (pred == labels).float().mean() * 100
    if logits_local is None:
        zero = torch.zeros(())
        return {"locoop_loss": loss_id, "loss_id": loss_id, "loss_ood": zero, "acc": acc, "ood_patch_percent": zero}
    b, p, c = logits_local.shape
    k = min(top_k, c)
    _, topk_indices = torch.topk(logits_local, k=k, dim=2)
    is_id = topk_indices.eq(labels.view(b, 1, 1).expand(-1, p, k)).any(dim=2)
    is_ood = ~is_id
    probs = F.softmax(logits_local, dim=-1)[is_ood]
    if probs.shape[0] == 0:
        loss_ood = torch.zeros(())
    else:
        loss_ood = -(-torch.mean(torch.sum(probs * torch.log(probs + 1e-5), 1)))
    return {"locoop_loss": loss_id + lam * loss_ood, "loss_id": loss_id, "loss_ood": loss_ood, "acc": acc,
            "ood_patch_percent": is_ood.float().mean() * 100}


@torch.no_grad()
def _evaluate(backbone, pristine, settings, images, labels, prompts, cfg):
    if isinstance(pristine, Path):
        backbone.model.load_state_dict(torch.load(pristine, map_location=backbone.device))
    else:
        backbone.model.load_state_dict(pristine)
    torch.manual_seed(cfg.seed)
    _prune(backbone, settings, cfg.prune, cfg.seed)
    dev = backbone.device
    labels = labels.to(dev)
    n = images.shape[0]
    fb = cfg.forward_batch_size
    if backbone.kind == "clip":
        text = backbone.encode_text(prompts, batch_size=cfg.text_batch_size)
        text = text / text.norm(p=2, dim=-1, keepdim=True)
        parts = [backbone.compute_features(images[i:i + fb].to(dev), {"image", "local"}) for i in range(0, n, fb)]
        g_all = torch.cat([p["image"] for p in parts])
        l_all = torch.cat([p["local"] for p in parts])
        scale = backbone.logit_scale()
    else:
        names = {"logits", "local_logits"} & set(backbone.provides)
        parts = [backbone.compute_features(images[i:i + fb].to(dev), names) for i in range(0, n, fb)]
        g_all = torch.cat([p["logits"] for p in parts])
        l_all = torch.cat([p["local_logits"] for p in parts]) if "local_logits" in names else None
    lam = cfg.lam if l_all is not None else 0.0
    values = {k: [] for k in ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent")}
    for i in range(0, n, cfg.batch_size):
        y = labels[i:i + cfg.batch_size]
        if backbone.kind == "clip":
            gf = g_all[i:i + cfg.batch_size]
            lf = l_all[i:i + cfg.batch_size]
            gf = gf / gf.norm(p=2, dim=-1, keepdim=True)
            lf = lf / lf.norm(p=2, dim=-1, keepdim=True)
            lg = torch.matmul(gf, text.t()) * scale
            ll = torch.matmul(lf, text.t()) * scale
        else:
            lg = g_all[i:i + cfg.batch_size]
            ll = l_all[i:i + cfg.batch_size] if l_all is not None else None
        out = _loss(lg, ll, y, lam, cfg.top_k)
        for k, v in out.items():
            values[k] += v.reshape(1).repeat(len(y)).tolist()
    return {k: float(np.mean(v)) for k, v in values.items()}


def _order(backbone, cfg):
    towers = backbone.towers()
    wt = cfg.weight_type
    names = [t for t in ("vision", "text") if t in towers and (cfg.modality == "both" or cfg.modality == t)]

    def seq(t):
        return ([(t, "W_p", -1)] if cfg.include_projection else []) + [(t, wt, i) for i in range(towers[t] - 1, -1, -1)]

    if cfg.searcher == "mis":
        assert towers["vision"] == towers["text"]
        head = [("vision", "W_p", -1), ("text", "W_p", -1)] if cfg.include_projection else []
        return head + [x for i in range(towers["vision"] - 1, -1, -1) for x in (("vision", wt, i), ("text", wt, i))]
    return [x for t in names for x in seq(t)]


def reference_search(backbone, images, labels, class_names, prompt, cfg, reload="disk"):
    """Run the official search. ``cfg`` is a ``SearchConfig`` (only its fields are read).

    ``reload``: ``"disk"`` (default) reloads the pristine weights from a checkpoint file for every candidate,
    ``"memory"`` from tensors kept in memory.

    Returns:
        dict with ``settings`` (accepted ``[tower, weight_type, layer, ratio]`` in order), ``candidates``
        (``{"step", "target", "ratio", **metrics}`` per evaluation), ``steps`` and ``seconds``.
    """
    start = time.perf_counter()
    pristine = {k: v.detach().clone() for k, v in backbone.model.state_dict().items()}
    tmp = tempfile.TemporaryDirectory()
    source = pristine
    if reload == "disk":
        source = Path(tmp.name) / "pristine.pt"
        torch.save(pristine, source)
    prompts = [prompt.format(c) for c in class_names] if backbone.kind == "clip" else None
    metric = cfg.metric
    best = {metric: float("inf")}
    settings, candidates, steps = [], [], []
    pool = _order(backbone, cfg)
    try:
        step = 0
        while pool:
            # LES tries every remaining weight at each step; SeTAR-S and MIS the next one in their order
            tried = list(pool) if cfg.searcher == "les" else [pool[0]]
            best_setting = [*tried[0], 0]
            for target in tried:
                for ratio in cfg.ratios:
                    m = _evaluate(backbone, source, settings + [[*target, ratio]], images, labels, prompts, cfg)
                    candidates.append({"step": step, "target": target, "ratio": ratio, **m})
                    if m[metric] < best[metric]:
                        best = m
                        best_setting = [*target, ratio]
            settings.append(best_setting)
            steps.append({"step": step, "setting": best_setting, **best})
            pool.remove(tuple(best_setting[:3]))
            step += 1
    finally:
        backbone.model.load_state_dict(pristine)
        tmp.cleanup()
    return {"settings": settings, "candidates": candidates, "steps": steps, "seconds": time.perf_counter() - start}
