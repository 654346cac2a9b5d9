"""The LoCoOp loss as the official SeTAR search computes it on the ID validation split.

Papers: Li et al., SeTAR, NeurIPS 2024 (Sec. 3.1, App. B, Eq. 10-12); Miyai et al., "LoCoOp: Few-Shot
Out-of-Distribution Detection via Prompt Learning", NeurIPS 2023. Original code: X1AOX1A/SeTAR
``src/svd_ood/svd_ood/loss.py`` (``LoCoOpLoss``) and ``src/svd_ood/svd_ood/model_hub.py``
(``compute_metrics_loss``: logits, ground-truth top-K patch mask, batch-weighted aggregation).

Per batch ``b`` of the (unshuffled) validation set:

* ``g = normalize(image) @ normalize(text)^T * s`` ``[B, C]`` and ``l`` likewise per patch ``[B, P, C]``, with
  ``s = logit_scale.exp()`` of the model (100 for OpenAI CLIP). Classifiers: ``g`` = logits, ``l`` = per-position
  logits, used as they are.
* a patch is ID when the ground-truth label is among its top-K classes;
* ``loss_id = CE(g, y)`` (batch mean); ``H = mean over OOD patches of -sum_c p log(p + 1e-5)``, ``p = softmax(l)``;
  ``loss_ood = -H`` (0 when the batch has no OOD patch); ``loss = loss_id + lambda * loss_ood``;
* ``acc`` = top-1 accuracy of ``g`` in %, ``ood_patch_percent`` = % of patches flagged OOD.

Every value is then averaged over batches weighted by batch size (spec §5.4): the per-batch mean of the OOD
term depends on which images share a batch, so the batch size (512 officially) is part of the definition.
Without local logits (a CNN without a per-position head) the loss is the ID term only (lambda = 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

LOSS_KEYS = ("locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent")
OFFICIAL_BATCH_SIZE = 512


@dataclass(frozen=True)
class LossResult:
    """Aggregated LoCoOp metrics of one model configuration on the validation set (Python floats)."""

    locoop_loss: float
    loss_id: float
    loss_ood: float
    acc: float
    ood_patch_percent: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def clip_logits(global_: torch.Tensor, text_n: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """``normalize(global_) @ text_n^T * scale``.

    Args:
        global_: image (or patch) embeddings ``[..., D]``, not normalised.
        text_n: L2-normalised text embeddings ``[C, D]``.
        scale: ``logit_scale.exp()``.

    Returns:
        Logits ``[..., C]``.
    """
    return l2_normalize(global_) @ text_n.t() * scale


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """L2 normalisation over the last axis, ``x / ||x||`` as the official code writes it."""
    return x / x.norm(p=2, dim=-1, keepdim=True)


def ood_patch_mask(logits_local: torch.Tensor, labels: torch.Tensor, top_k: int) -> torch.Tensor:
    """``[B, P]`` bool: True where ``labels`` is NOT among the patch's top-``top_k`` classes.

    ``top_k >= C`` flags no patch (every label is in the top C); ``top_k == 0`` flags every patch.
    """
    k = min(int(top_k), logits_local.shape[-1])
    if k == 0:
        return torch.ones(logits_local.shape[:2], dtype=torch.bool, device=logits_local.device)
    topk = logits_local.topk(k, dim=-1).indices  # [B, P, k]
    return ~(topk == labels.view(-1, 1, 1)).any(dim=-1)


def ood_neg_entropy(logits_local: torch.Tensor, labels: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The OOD-patch mask ``[B, P]`` and ``sum_c p log(p + 1e-5)`` (= -entropy) of each OOD patch ``[n_ood]``, in
    row-major patch order."""
    is_ood = ood_patch_mask(logits_local, labels, top_k)
    probs = F.softmax(logits_local[is_ood], dim=-1)  # [n_ood, C]
    return is_ood, torch.sum(probs * torch.log(probs + 1e-5), 1)


def batch_terms(logits_global: torch.Tensor, logits_local: torch.Tensor | None, labels: torch.Tensor,
                lam: float, top_k: int) -> dict[str, torch.Tensor]:
    """The LoCoOp terms of one batch (0-d float32 tensors), as ``LoCoOpLoss`` + ``compute_metrics_loss``.

    Args:
        logits_global: ``[B, C]`` scaled logits.
        logits_local: ``[B, P, C]`` scaled per-patch logits, or None (ID loss only; ``lam`` is ignored).
        labels: ``[B]`` ground-truth class indices.
        lam: weight of the OOD term.
        top_k: K of the patch mask.

    Returns:
        ``{"locoop_loss", "loss_id", "loss_ood", "acc", "ood_patch_percent"}``.
    """
    loss_id = F.cross_entropy(logits_global, labels)
    acc = (logits_global.argmax(-1) == labels).float().mean() * 100
    zero = torch.zeros((), dtype=loss_id.dtype, device=loss_id.device)
    if logits_local is None:
        return {"locoop_loss": loss_id, "loss_id": loss_id, "loss_ood": zero, "acc": acc, "ood_patch_percent": zero}
    is_ood, neg_ent = ood_neg_entropy(logits_local, labels, top_k)
    loss_ood = zero if neg_ent.shape[0] == 0 else torch.mean(neg_ent)
    return {
        "locoop_loss": loss_id + lam * loss_ood,
        "loss_id": loss_id,
        "loss_ood": loss_ood,
        "acc": acc,
        "ood_patch_percent": is_ood.float().mean() * 100,
    }


class LossAccumulator:
    """Batch-size-weighted mean of per-batch values (float64 sums of the float32 batch values)."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(LOSS_KEYS, 0.0)
        self._n = 0

    def add(self, terms: dict[str, torch.Tensor], n: int) -> None:
        values = torch.stack([terms[k].detach().reshape(()) for k in LOSS_KEYS]).cpu().tolist()
        for k, v in zip(LOSS_KEYS, values):
            self._sums[k] += float(v) * n
        self._n += n

    def result(self) -> LossResult:
        if self._n == 0:
            raise ValueError("no batch was added")
        return LossResult(**{k: self._sums[k] / self._n for k in LOSS_KEYS})


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices ``[0:bs], [bs:2bs], ...`` covering ``range(n)`` (``shuffle=False`` order)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def locoop_loss_clip(image: torch.Tensor, local: torch.Tensor | None, text: torch.Tensor, logit_scale: float | torch.Tensor,
                     labels: torch.Tensor, lam: float, top_k: int, batch_size: int = OFFICIAL_BATCH_SIZE,
                     normalized: bool = False) -> LossResult:
    """LoCoOp loss of CLIP features over the whole validation set.

    Args:
        image: global image embeddings ``[N, D]`` (not normalised).
        local: value-path local embeddings ``[N, P, D]`` (not normalised), or None for the ID loss only.
        text: class text embeddings ``[C, D]``.
        logit_scale: ``logit_scale.exp()`` of the model.
        labels: ``[N]`` class indices.
        lam, top_k: LoCoOp lambda and K.
        batch_size: batch size of the aggregation (512 officially).
        normalized: ``image``, ``local`` and ``text`` are already L2-normalised (the same numbers: the
            normalisation is row-wise, so normalising once or per batch gives identical values).
    """
    text_n = text if normalized else l2_normalize(text)

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return x @ text_n.t() * logit_scale if normalized else clip_logits(x, text_n, logit_scale)

    def logits(sl: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
        return scaled(image[sl]), (scaled(local[sl]) if local is not None else None)

    return locoop_loss_batched(logits, image.shape[0], labels, lam, top_k, batch_size)


def locoop_loss_logits(logits: torch.Tensor, local_logits: torch.Tensor | None, labels: torch.Tensor, lam: float,
                       top_k: int, batch_size: int = OFFICIAL_BATCH_SIZE) -> LossResult:
    """LoCoOp loss of classifier outputs (logits ``[N, C]``, per-position logits ``[N, P, C]`` or None)."""
    return locoop_loss_batched(lambda sl: (logits[sl], local_logits[sl] if local_logits is not None else None),
                               logits.shape[0], labels, lam, top_k, batch_size)


def locoop_loss_batched(fn: Callable[[slice], tuple[torch.Tensor, torch.Tensor | None]], n: int, labels: torch.Tensor,
                        lam: float, top_k: int, batch_size: int = OFFICIAL_BATCH_SIZE) -> LossResult:
    """LoCoOp loss where ``fn(slice) -> (logits_global, logits_local)`` produces each batch's logits lazily."""
    acc = LossAccumulator()
    for sl in batches(n, batch_size):
        g, l = fn(sl)
        acc.add(batch_terms(g, l, labels[sl], lam, top_k), sl.stop - sl.start)
    return acc.result()


# --------------------------------------------------------------------------------- per-image terms
#: Columns of :func:`image_terms`: cross-entropy, 1 if top-1 correct, sum of ``sum_c p log(p + 1e-5)`` over the
#: image's OOD patches, number of OOD patches, number of patches.
IMAGE_TERM_COLUMNS = ("ce", "correct", "ood_sum", "ood_count", "patches")


def image_terms(logits_global: torch.Tensor, logits_local: torch.Tensor | None, labels: torch.Tensor,
                top_k: int) -> torch.Tensor:
    """The per-image parts of :func:`batch_terms`, from which any batch's terms follow (:func:`reduce_image_terms`):
    a batch's mean cross-entropy, accuracy and OOD-patch share are sums over its images divided by its size, and its
    OOD term is the sum of the images' OOD-patch sums over the sum of their OOD-patch counts. So the images of one
    official batch may be computed by different processes and the batch's terms still follow.

    Args:
        logits_global: ``[B, C]``; logits_local: ``[B, P, C]`` or None; labels: ``[B]``; top_k: K of the mask.

    Returns:
        ``[B, 5]`` float64 on the CPU, columns :data:`IMAGE_TERM_COLUMNS`.
    """
    n = logits_global.shape[0]
    if n == 0:
        return torch.zeros((0, 5), dtype=torch.float64)
    ce = F.cross_entropy(logits_global, labels, reduction="none").double()
    correct = (logits_global.argmax(-1) == labels).double()
    zeros = torch.zeros_like(ce)
    if logits_local is None:
        return torch.stack([ce, correct, zeros, zeros, zeros], 1).cpu()
    is_ood, neg_ent = ood_neg_entropy(logits_local, labels, top_k)
    sums = zeros.index_add(0, is_ood.nonzero()[:, 0], neg_ent.double())
    patches = torch.full_like(ce, float(logits_local.shape[1]))
    return torch.stack([ce, correct, sums, is_ood.sum(1).double(), patches], 1).cpu()  # one copy to the host


def reduce_image_terms(terms: torch.Tensor, lam: float, batch_size: int = OFFICIAL_BATCH_SIZE) -> LossResult:
    """The batch-size-weighted mean of per-batch LoCoOp terms (as :func:`locoop_loss_batched`) from the per-image
    terms of every validation image in the official (unshuffled) order; float64 throughout, summed in image order,
    so every process holding the same ``terms`` gets the same numbers bit for bit."""
    n = int(terms.shape[0])
    if n == 0:
        raise ValueError("no image terms")
    sums = dict.fromkeys(LOSS_KEYS, 0.0)
    for sl in batches(n, batch_size):
        nb = sl.stop - sl.start
        ce, correct, ood_sum, ood_count, patches = (float(v) for v in terms[sl].sum(0).tolist())
        loss_id = ce / nb
        loss_ood = ood_sum / ood_count if ood_count > 0 else 0.0
        values = {"locoop_loss": loss_id + lam * loss_ood, "loss_id": loss_id, "loss_ood": loss_ood,
                  "acc": 100.0 * correct / nb, "ood_patch_percent": 100.0 * ood_count / patches if patches else 0.0}
        for k in LOSS_KEYS:
            sums[k] += values[k] * nb
    return LossResult(**{k: sums[k] / n for k in LOSS_KEYS})
