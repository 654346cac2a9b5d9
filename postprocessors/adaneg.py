"""AdaNeg: adaptive negative proxies from a memory of test features (a test-time score).

Paper: Zhang & Zhang, "AdaNeg: Adaptive Negative Proxy Guided OOD Detection with Vision-Language Models",
NeurIPS 2024 (reported on ImageNet-1K, CLIP ViT-B/16, iNaturalist/SUN/Places/Textures: FPR95 18.92, AUROC 96.66).
Code: YBZh/OpenOOD-VLM — the method is ``TTAPromptPostprocessor_noadagap`` (postprocessor ``ttapromptnoadagap``) in
``openood/postprocessors/ttaprompt_postprocessor.py``, run by ``scripts/ood/adaneg/imagenet.sh`` with
``memleng=10 thres=0.5 gap=0.5 lambdaval=0.1 group_num=5 random_permute=True beta=5.5 samada=False
in_score=combine`` and batches of 256 through the ``ood_clip_tta`` evaluator.

Text: the ID prompts and the negative labels are NegLabel's (:mod:`.neglabel`: same mining, same cache); ``T`` is
the ``C + M`` normalised text embeddings (ID first), ``s`` the model's logit scale (100 for OpenAI CLIP), ``x`` the
L2-normalised image embedding. ``mass(a, b)`` is NegLabel's grouped ID mass: drop the last ``M mod G`` negatives,
permute the rest with ``torch.randperm`` under seed 0 (``random_permute``; else keep their order), split into G
groups, and average over groups ``Σ_{i≤C} softmax([a, b_g])_i``.

State of one stream (reset at its start): a memory of ``C + M`` rows of ``1 + L`` slots (``L = memory_len``);
slot 0 holds the text embedding, the others are zero; a fill counter per row starting at 1 and a slot entropy,
0 everywhere. For every batch, in stream order:

1. ``v = s · x Tᵀ``; ``conf_van = mass(v_ID, v_neg)``;
2. images with ``conf_van > thres + gap (1 - thres)`` (0.75) go, in batch order, to the ID row ``argmax v_ID``
   with entropy ``H = -Σ p log(p + 1e-8)`` of ``p = softmax(v_ID)``; then images with
   ``conf_van < thres - gap · thres`` (0.25) go to the negative row ``C + argmax v_neg`` (over all M negatives)
   with ``H`` of ``softmax(v_neg)``. Writing into a row: while its counter is below ``L`` the image takes slot
   ``counter`` and the counter grows (so a row keeps at most ``L - 1`` images, slot ``L`` stays zero — the
   reference's rule); a full row replaces its highest-entropy slot (the last one among equal maxima) when ``H``
   is below some slot entropy, else the image is not stored;
3. proxies: ``samada = False``: ``P = normalise(mean over slots)``; ``samada = True``: per image,
   ``P(x) = normalise(Σ_l exp(-β (1 - m_l · x)) m_l)``; ``o = s · x Pᵀ``; ``conf = mass(o_ID, o_neg)``;
4. score (``in_score``): ``combine`` = ``conf + λ · conf_van`` (default), ``adaonly`` = ``conf``,
   ``vanillaonly`` = ``conf_van``, ``multiply`` = ``conf · conf_van``.

A batch's own images enter the memory before it is scored, so the score of an image depends on the order of the
stream. The benchmark feeds the declared protocol of :mod:`oodbench.stream` (one stream per OOD set: ID test +
that set, seeded shuffles, batches of ``batch_size`` = 256, order seeds ``stream_seeds``); ``score(features)`` is
one stream over ``features`` in the given order.

Differences from the reference: float64 arithmetic (the reference: float32 on the GPU — threshold and entropy
comparisons at exact ties may then differ); ``beta`` is used as given (the reference casts it to ``int``, so its
script's 5.5 acts as 5, the default here); the reference's stream order comes from an unseeded shuffle, here it is
declared and seeded.

No APS grid (the reference has none).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

import numpy as np

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors.neglabel import DEFAULT_CORPUS, NegLabel, group_permutation
from oodbench.postprocessors.ops import as_2d, check_in_range, l2_normalize, logsumexp64
from oodbench.registry import register

IN_SCORES = ("combine", "adaonly", "vanillaonly", "multiply")
ENTROPY_EPS = 1e-8  # inside the log of the slot entropy, as the reference
SAMADA_CHUNK = 1 << 24  # elements of the per-image proxy tensor built at once (samada = True)


def grouped_id_mass(pos_logits: np.ndarray, neg_logits: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mean over groups of the ID softmax mass of ``[pos, neg_g]``, float64 ``[n]``.

    Args:
        pos_logits: ``[n, C]``; neg_logits: ``[n, M]``; groups: int ``[G, S]`` indices into the M negatives.
    """
    n = len(pos_logits)
    lse_pos = logsumexp64(np.asarray(pos_logits, dtype=np.float64))
    grouped = np.asarray(neg_logits, dtype=np.float64)[:, groups.ravel()].reshape(n, *groups.shape)
    lse_neg = logsumexp64(grouped)  # [n, G]
    return np.exp(-np.logaddexp(0.0, lse_neg - lse_pos[:, None])).mean(axis=1)


def softmax_entropy(logits: np.ndarray) -> float:
    """``-Σ p log(p + 1e-8)`` of ``p = softmax(logits)`` (one row)."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - logsumexp64(z))
    return float(-(p * np.log(p + ENTROPY_EPS)).sum())


class ProxyMemory:
    """The memory of one stream: ``[K, 1 + L, D]`` slots (slot 0 = text), fill counters and slot entropies."""

    def __init__(self, text: np.ndarray, length: int):
        k, d = text.shape
        self.length = int(length)
        self.feats = np.zeros((k, self.length + 1, d), dtype=np.float64)
        self.feats[:, 0] = text
        self.count = np.ones(k, dtype=np.int64)
        self.entropy = np.zeros((k, self.length + 1), dtype=np.float64)

    def add(self, row: int, feat: np.ndarray, entropy: float) -> None:
        """Store ``feat`` in ``row`` under the reference's rule (module docstring, step 2)."""
        if self.count[row] == self.length:
            ent = self.entropy[row]
            if not np.any(entropy < ent):
                return
            slot = len(ent) - 1 - int(np.argmax(ent[::-1]))  # the last slot among equal maxima
        else:
            slot = int(self.count[row])
            self.count[row] += 1
        self.feats[row, slot] = feat
        self.entropy[row, slot] = entropy

    def proxy_logits(self, x: np.ndarray, scale: float, samada: bool, beta: float) -> np.ndarray:
        """``s · x Pᵀ`` with the memory's proxies ``P`` (mean of the slots, or per image with ``samada``), ``[n, K]``."""
        if not samada:
            proxies = self.feats.sum(axis=1)
            proxies /= np.linalg.norm(proxies, axis=1, keepdims=True)
            return scale * (x @ proxies.T)
        k, slots, d = self.feats.shape
        out = np.empty((len(x), k), dtype=np.float64)
        step = max(1, SAMADA_CHUNK // (k * max(slots, d)))
        for lo in range(0, len(x), step):
            xb = x[lo:lo + step]
            w = np.exp(-beta * (1.0 - np.einsum("kld,nd->nkl", self.feats, xb)))  # [n, K, 1 + L]
            prox = np.einsum("nkl,kld->nkd", w, self.feats)
            prox /= np.linalg.norm(prox, axis=2, keepdims=True)
            out[lo:lo + step] = scale * np.einsum("nd,nkd->nk", xb, prox)
        return out


@register("postprocessors", "adaneg")
class AdaNeg(NegLabel):
    """AdaNeg (Zhang & Zhang, NeurIPS 2024): NegLabel against proxies adapted from a memory of the test stream."""

    display_name: ClassVar[str] = "AdaNeg"
    default_for: ClassVar[frozenset[str]] = frozenset()
    requires: ClassVar[frozenset[str]] = frozenset({"image", "class_names", "logit_scale"})
    search_space: ClassVar[dict[str, list]] = {}
    test_time: ClassVar[bool] = True
    paper: ClassVar[str] = ("Zhang & Zhang, AdaNeg: Adaptive Negative Proxy Guided OOD Detection with "
                            "Vision-Language Models, NeurIPS 2024")

    def __init__(self, ngroup: int = 5, memory_len: int = 10, thres: float = 0.5, gap: float = 0.5,
                 lambda_val: float = 0.1, beta: float = 5.0, samada: bool = False, in_score: str = "combine",
                 random_permute: bool = True, seed: int = 0, batch_size: int = 256,
                 stream_seeds: tuple = (0, 1, 2), quantile: float = 0.95, neg_fraction: float = 0.15,
                 corpus: str = DEFAULT_CORPUS, pos_prompt: str = "the nice {}", noun_prompt: str = "the nice {}",
                 adj_prompt: str = "This is a {} photo"):
        self.ngroup = ngroup
        self.memory_len = memory_len
        self.thres = thres
        self.gap = gap
        self.lambda_val = lambda_val
        self.beta = beta
        self.samada = samada
        self.in_score = in_score
        self.random_permute = random_permute
        self.seed = seed
        self.batch_size = batch_size
        self.stream_seeds = stream_seeds
        self.quantile = quantile
        self.neg_fraction = neg_fraction
        self.corpus = corpus
        self.pos_prompt = pos_prompt
        self.noun_prompt = noun_prompt
        self.adj_prompt = adj_prompt

    # fit: NegLabel's mining (same prompts, corpus and cache) -> pos_text_ [C, D], neg_text_ [M, D]

    def stream_protocol(self) -> dict[str, Any]:
        return {"seeds": self.stream_seeds, "batch_size": self.batch_size}

    def _validated(self) -> np.ndarray:
        """Check the hyperparameters; return the negative groups ``[G, S]``."""
        self._check_fitted("neg_text_")
        m = len(self.neg_text_)
        for name in ("ngroup", "memory_len", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"adaneg: {name}={v!r} must be a positive integer")
        if self.ngroup > m:
            raise UserError(f"adaneg: ngroup={self.ngroup} exceeds the {m} mined negative labels")
        check_in_range("adaneg", "thres", self.thres, 0, 1)
        check_in_range("adaneg", "gap", self.gap, 0, 1)
        check_in_range("adaneg", "lambda_val", self.lambda_val, 0, float("inf"))
        check_in_range("adaneg", "beta", self.beta, 0, float("inf"))
        if self.in_score not in IN_SCORES:
            raise UserError(f"adaneg: in_score={self.in_score!r} must be one of {', '.join(IN_SCORES)}")
        if self.random_permute:
            return group_permutation(m, int(self.ngroup), int(self.seed))
        keep = m - m % int(self.ngroup)
        return np.arange(keep).reshape(int(self.ngroup), -1)

    def score_stream(self, batches: Iterable[Features]) -> list[np.ndarray]:
        """Scores of each batch of one stream, fed in order to a fresh memory (module docstring)."""
        groups = self._validated()
        c = len(self.pos_text_)
        text = np.concatenate([self.pos_text_, self.neg_text_]).astype(np.float64)
        memory = ProxyMemory(text, int(self.memory_len))
        hi = self.thres + self.gap * (1.0 - self.thres)
        lo = self.thres - self.gap * self.thres
        out = []
        for batch in batches:
            x = l2_normalize(as_2d(batch, "image")).astype(np.float64)
            scale = float(batch["logit_scale"])
            van = scale * (x @ text.T)
            conf_van = grouped_id_mass(van[:, :c], van[:, c:], groups)
            for i in np.flatnonzero(conf_van > hi):
                memory.add(int(np.argmax(van[i, :c])), x[i], softmax_entropy(van[i, :c]))
            for i in np.flatnonzero(conf_van < lo):
                memory.add(c + int(np.argmax(van[i, c:])), x[i], softmax_entropy(van[i, c:]))
            ada = memory.proxy_logits(x, scale, bool(self.samada), float(self.beta))
            conf = grouped_id_mass(ada[:, :c], ada[:, c:], groups)
            if self.in_score == "combine":
                s = conf + self.lambda_val * conf_van
            elif self.in_score == "adaonly":
                s = conf
            elif self.in_score == "vanillaonly":
                s = conf_van
            else:
                s = conf * conf_van
            out.append(np.asarray(s, dtype=np.float64))
        return out

    def score(self, features: Features) -> np.ndarray:
        """One stream over ``features`` in their given order, by batches of ``batch_size``, from a fresh memory."""
        self._validated()
        n, b = len(features), int(self.batch_size)
        outs = self.score_stream(features.subset(slice(i, i + b)) for i in range(0, n, b))
        return np.concatenate(outs) if outs else np.zeros(0, dtype=np.float64)
