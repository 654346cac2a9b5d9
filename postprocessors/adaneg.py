"""AdaNeg: adaptive negative proxies from a memory of test features (a test-time score).

Paper: Zhang & Zhang, "AdaNeg: Adaptive Negative Proxy Guided OOD Detection with Vision-Language Models",
NeurIPS 2024 (reported on ImageNet-1K, CLIP ViT-B/16, iNaturalist/SUN/Places/Textures: FPR95 18.92, AUROC 96.66).
Code: YBZh/OpenOOD-VLM — the method is ``TTAPromptPostprocessor_noadagap`` (postprocessor ``ttapromptnoadagap``) in
``openood/postprocessors/ttaprompt_postprocessor.py``, run by ``scripts/ood/adaneg/imagenet.sh`` with
``memleng=10 thres=0.5 gap=0.5 lambdaval=0.1 group_num=5 random_permute=True beta=5.5 samada=False
in_score=combine`` and batches of 256 through the ``ood_clip_tta`` evaluator.

Text (``neg_source = "official"``, the default): the reference's own selection
(``openood/networks/clip_fixed_ood_prompt.py``: ``get_text_features_neg``, ``get_selected_ood_text_list``;
``clip_for_wordnet_prepare.py``: ``generate_cossim_idname_wordnet_dedup``), step by step:

1. candidates: the nouns and the adjectives of every word file, each part de-duplicated; words equal to an ID
   class name (exact string) removed from both parts; adjectives that are also nouns removed (kept as nouns);
2. ID prompts ``"The nice {}."``, noun prompts ``"The nice {}."``, adjective prompts ``"This is a {} photo."``,
   L2-normalised;
3. a candidate's similarity is the value at index ``int(C · 0.95)`` (950 of 1,000 on ImageNet) of its cosines to
   the C ID prompts sorted ascending — an order statistic, not an interpolated quantile;
4. exactly ``neg_count`` = 10,000 labels, split by part size: ``int(10,000 · A / (A + N))`` adjectives (1,646 with
   the reference's word files) and the rest nouns, the lowest similarities of each part (ascending, ties in
   candidate order);
5. the negative embeddings are the selected adjectives, then the selected nouns.

``neg_source = "neglabel"`` takes NegLabel's mining instead (:mod:`.neglabel`: ``"the nice {}"`` prompts, the
interpolated 0.95 quantile, the lowest 15 % of each part, nouns first; same cache as ``neglabel``). The word
files are the ``corpus``: the shipped WordNet rebuild, a corpus file, or a folder of the reference's word files.

``T`` is the ``C + M`` normalised text embeddings (ID first), ``s`` the model's logit scale (100 for OpenAI CLIP),
``x`` the L2-normalised image embedding. ``mass(a, b)`` is NegLabel's grouped ID mass: drop the last ``M mod G``
negatives, permute the rest with ``torch.randperm`` under seed 0 (``random_permute``; else keep their order),
split into G groups, and average over groups ``Σ_{i≤C} softmax([a, b_g])_i``.

State of one stream (reset at its start): a memory of ``C + M`` rows of ``1 + L`` slots (``L = memory_len``);
slot 0 holds the text embedding, the others are zero; a fill counter per row starting at 1 and a slot entropy,
0 everywhere. For every batch, in stream order:

1. ``v = s · x Tᵀ``; ``conf_van = mass(v_ID, v_neg)``;
2. images with ``conf_van > thres + gap (1 - thres)`` (0.75) go, in batch order, to the ID row ``argmax v_ID``
   with entropy ``H = -Σ p log(p + 1e-8)`` of ``p = softmax(v_ID)`` (``entropy_precision``, below); then images with
   ``conf_van < thres - gap · thres`` (0.25) go to the negative row ``C + argmax v_neg`` (over all M negatives)
   with ``H`` of ``softmax(v_neg)``. Writing into a row: while its counter is below ``L`` the image takes slot
   ``counter`` and the counter grows (so a row keeps at most ``L - 1`` images, slot ``L`` stays zero — the
   reference's rule); a full row replaces its highest-entropy slot (the last one among equal maxima) when ``H``
   is below some slot entropy, else the image is not stored;
3. proxies: ``samada = False``: ``P = normalise(mean over slots)``; ``samada = True``: per image,
   ``P(x) = normalise(Σ_l exp(-β (1 - m_l · x)) m_l)``; ``o = s · x Pᵀ``; ``conf = mass(o_ID, o_neg)``;
4. score (``in_score``): ``combine`` = ``conf + λ · conf_van`` (default), ``adaonly`` = ``conf``,
   ``vanillaonly`` = ``conf_van``, ``multiply`` = ``conf · conf_van``.

Half precision. The reference runs OpenAI CLIP in fp16, so ``p`` is a half tensor: wherever a probability
underflows to 0 (any ID row of a 1,000-class softmax at scale 100, every negative row), ``log(0 + 1e-8)`` is
``log(0)`` in half precision and ``H`` is NaN; NaN never compares below a stored entropy, so such an image never
replaces a slot of a full row — in practice a row keeps the first ``L - 1`` images it receives.
``entropy_precision = "fp16"`` (the default) reproduces this: ``p`` is rounded to fp16 and the entropy evaluated
with fp16 rounding (NaN exactly when some probability is 0 in fp16); ``"fp64"`` computes the formula exactly
(the paper's entropy-based replacement). The rest is float64 here (the reference: fp16 features and logits, so
threshold comparisons near 0.25 / 0.75 and argmax ties may differ).

A batch's own images enter the memory before it is scored, so the score of an image depends on the order of the
stream. The benchmark feeds the declared protocol of :mod:`oodbench.stream` (one stream per OOD set: ID test +
that set, batches of ``batch_size`` = 256); ``score(features)`` is one stream over ``features`` in the given order.
``stream_order = "seeded"`` (default): ``torch.randperm`` under each of ``stream_seeds`` (0, 1, 2), reported as the
mean over the orders. ``stream_order = "official"``: the one order of the release evaluator (``ood_clip_tta``), which
shuffles ``ConcatDataset([ID, set])`` with an unseeded ``DataLoader(shuffle=True)``; every batch before it called
``torch.manual_seed(0); torch.randperm(M - M mod G)`` (``random_permute``), so the global generator is in that state
when the loader draws its base seed and then its sampler's seed, and the order is ``torch.randperm(N)`` under that
sampler seed (:func:`official_stream_order`; current PyTorch ``DataLoader``/``RandomSampler``). This is exact for every
OOD set that follows another one in the evaluator; the first set's order depends on the generator's use while the
model was built, which is not reproduced. ``stream_seeds`` is then ignored (one order).

Other differences from the reference: ``beta`` is used as given (the reference casts it to ``int``, so its
script's 5.5 acts as 5, the default here); the text is encoded at the backbone's precision (the reference: fp16),
so candidates whose similarities tie in fp16 may be ordered differently (the reference orders ties by Python's
set order).

No APS grid (the reference has none).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors.neglabel import (
    DEFAULT_CORPUS,
    MinedLabels,
    NegLabel,
    cached_mining,
    encode_normalized,
    group_permutation,
)
from oodbench.postprocessors.neglabel_corpus import Corpus, load_corpus
from oodbench.postprocessors.ops import as_2d, check_in_range, l2_normalize, logsumexp64, row_chunks
from oodbench.registry import register

log = logging.getLogger("oodbench")

IN_SCORES = ("combine", "adaonly", "vanillaonly", "multiply")
NEG_SOURCES = ("official", "neglabel")
STREAM_ORDERS = ("seeded", "official")
ENTROPY_PRECISIONS = ("fp16", "fp64")
ENTROPY_EPS = 1e-8  # inside the log of the slot entropy, as the reference
SAMADA_CHUNK = 1 << 24  # elements of the per-image proxy tensor built at once (samada = True)
#: The reference's prompts (``get_templates('nice')``, ``adj_imagenet_template``) and label count.
OFFICIAL_PROMPTS = {"pos_prompt": "The nice {}.", "noun_prompt": "The nice {}.", "adj_prompt": "This is a {} photo."}
NEGLABEL_PROMPTS = {"pos_prompt": "the nice {}", "noun_prompt": "the nice {}", "adj_prompt": "This is a {} photo"}
OFFICIAL_NEG_COUNT = 10_000


# ------------------------------------------------------------------------ the reference's negative-label selection
def official_candidates(nouns: Sequence[str], adjectives: Sequence[str],
                        class_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The candidate (nouns, adjectives): each part de-duplicated (first occurrence kept), exact ID class names
    removed from both, adjectives that are also nouns removed."""
    classes = set(class_names)
    noun_list = [w for w in dict.fromkeys(nouns) if w not in classes]
    noun_set = set(noun_list)
    adj_list = [w for w in dict.fromkeys(adjectives) if w not in classes and w not in noun_set]
    return noun_list, adj_list


def order_statistic_similarity(candidates: np.ndarray, pos: np.ndarray, fraction: float = 0.95) -> np.ndarray:
    """For every candidate, its cosines to the C ID prompts sorted ascending, value at index ``int(C · fraction)``.

    Args:
        candidates: ``[K, D]`` normalised; pos: ``[C, D]`` normalised.
    Returns:
        float32 ``[K]``.
    """
    k = min(int(len(pos) * fraction), len(pos) - 1)
    out = np.empty(len(candidates), dtype=np.float32)
    for sl in row_chunks(len(candidates), len(pos)):
        out[sl] = np.partition(candidates[sl] @ pos.T, k, axis=1)[:, k]
    return out


def official_split(n_adj: int, n_noun: int, count: int = OFFICIAL_NEG_COUNT) -> tuple[int, int]:
    """How many adjectives and nouns the reference selects: ``int(count · A / (A + N))`` and the rest."""
    if n_adj + n_noun == 0:
        return 0, 0
    adj_num = int(count * (n_adj / (n_adj + n_noun)))
    return adj_num, count - adj_num


def mine_official(encoder: Any, class_names: Sequence[str], corpus: Corpus, count: int = OFFICIAL_NEG_COUNT,
                  fraction: float = 0.95, pos_prompt: str = OFFICIAL_PROMPTS["pos_prompt"],
                  noun_prompt: str = OFFICIAL_PROMPTS["noun_prompt"], adj_prompt: str = OFFICIAL_PROMPTS["adj_prompt"],
                  source: str = "official") -> MinedLabels:
    """AdaNeg's reference selection (module docstring): selected adjectives, then selected nouns."""
    t0 = time.perf_counter()
    nouns, adjs = official_candidates(corpus.nouns, corpus.adjectives, class_names)
    pos = encode_normalized(encoder, [pos_prompt.format(c) for c in class_names], "ID prompts")
    dim = pos.shape[1]
    adj_emb = (encode_normalized(encoder, [adj_prompt.format(w) for w in adjs], "adjective prompts") if adjs
               else np.zeros((0, dim), np.float32))
    noun_emb = (encode_normalized(encoder, [noun_prompt.format(w) for w in nouns], "noun prompts") if nouns
                else np.zeros((0, dim), np.float32))
    adj_num, noun_num = official_split(len(adjs), len(nouns), count)
    adj_idx = np.argsort(order_statistic_similarity(adj_emb, pos, fraction), kind="stable")[:adj_num]
    noun_idx = np.argsort(order_statistic_similarity(noun_emb, pos, fraction), kind="stable")[:noun_num]
    neg = np.concatenate([adj_emb[adj_idx], noun_emb[noun_idx]])
    words = tuple(adjs[i] for i in adj_idx) + tuple(nouns[i] for i in noun_idx)
    log.info("adaneg: selected %d negative labels (%d adjectives, %d nouns) from %d candidates in %.1f s",
             len(words), len(adj_idx), len(noun_idx), len(adjs) + len(nouns), time.perf_counter() - t0)
    return MinedLabels(pos, np.ascontiguousarray(neg, dtype=np.float32), words, len(noun_idx))


# ------------------------------------------------------------------------------- the reference's stream order
def official_stream_order(n: int, neg_keep: int) -> np.ndarray:
    """The order in which the release evaluator feeds ``n`` stream images (module docstring, ``stream_order``).

    Args:
        n: ``len(ConcatDataset([ID, set]))``.
        neg_keep: ``M - M mod G``, the length of the grouping permutation every batch draws after
            ``torch.manual_seed(0)``.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.randperm(int(neg_keep))  # the previous batch's grouping permutation
        torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's base seed
        seed = int(torch.empty((), dtype=torch.int64).random_().item())  # RandomSampler's generator seed
    return torch.randperm(int(n), generator=torch.Generator().manual_seed(seed)).numpy()


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


def softmax_entropy(logits: np.ndarray, precision: str = "fp64") -> float:
    """``-Σ p log(p + 1e-8)`` of ``p = softmax(logits)`` (one row).

    ``precision = "fp16"``: as a half tensor does it — ``p`` rounded to fp16, each operation's result rounded to
    fp16 (computed in fp32, as PyTorch's half kernels), so the result is NaN when some ``p`` is 0 in fp16
    (``1e-8`` itself rounds to 0 there, and ``0 · log 0`` is NaN).
    """
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - logsumexp64(z))
    if precision == "fp64":
        return float(-(p * np.log(p + ENTROPY_EPS)).sum())
    f16, f32 = np.float16, np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        p16 = p.astype(f16).astype(f32)
        shifted = (p16 + f32(ENTROPY_EPS)).astype(f16).astype(f32)
        logs = np.log(shifted).astype(f16).astype(f32)
        terms = (p16 * logs).astype(f16).astype(f32)
        return float(-(terms.sum(dtype=f32).astype(f16)))


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
            # the last slot among equal maxima; a NaN entropy counts as the largest (torch.sort puts NaN last)
            slot = len(ent) - 1 - int(np.argmax(ent[::-1]))
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

    fit_params: ClassVar[frozenset[str]] = frozenset(
        {"neg_source", "neg_count", "quantile", "neg_fraction", "corpus", "pos_prompt", "noun_prompt", "adj_prompt"})

    def __init__(self, ngroup: int = 5, memory_len: int = 10, thres: float = 0.5, gap: float = 0.5,
                 lambda_val: float = 0.1, beta: float = 5.0, samada: bool = False, in_score: str = "combine",
                 random_permute: bool = True, seed: int = 0, batch_size: int = 256,
                 stream_seeds: tuple = (0, 1, 2), stream_order: str = "seeded", entropy_precision: str = "fp16",
                 neg_source: str = "official", neg_count: int = OFFICIAL_NEG_COUNT, quantile: float = 0.95,
                 neg_fraction: float = 0.15, corpus: str = DEFAULT_CORPUS, pos_prompt: str | None = None,
                 noun_prompt: str | None = None, adj_prompt: str | None = None):
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
        self.stream_order = stream_order
        self.entropy_precision = entropy_precision
        self.neg_source = neg_source
        self.neg_count = neg_count
        self.quantile = quantile
        self.neg_fraction = neg_fraction
        self.corpus = corpus
        self.pos_prompt = pos_prompt
        self.noun_prompt = noun_prompt
        self.adj_prompt = adj_prompt

    def prompts(self) -> dict[str, str]:
        """The three prompts in use: those given, else the defaults of ``neg_source``."""
        defaults = NEGLABEL_PROMPTS if self.neg_source == "neglabel" else OFFICIAL_PROMPTS
        return {k: getattr(self, k) if getattr(self, k) is not None else v for k, v in defaults.items()}

    def fit(self, features: Features | None = None, encoder: Any = None) -> "AdaNeg":
        """Select the negative labels (``neg_source``) -> ``pos_text_ [C, D]``, ``neg_text_ [M, D]``."""
        if self.neg_source not in NEG_SOURCES:
            raise UserError(f"adaneg: neg_source={self.neg_source!r} must be one of {', '.join(NEG_SOURCES)}")
        check_in_range("adaneg", "quantile", self.quantile, 0, 1)
        prompts = self.prompts()
        for name, value in prompts.items():
            if not isinstance(value, str) or value.count("{}") != 1:
                raise UserError(f"adaneg: {name}={value!r} must contain one '{{}}' for the word")
        class_names = self._class_names(features, encoder, "select its negative labels")
        corpus = load_corpus(self.corpus)
        if self.neg_source == "neglabel":
            check_in_range("adaneg", "neg_fraction", self.neg_fraction, 0, 1, low_open=True)
            settings = {"quantile": float(self.quantile), "fraction": float(self.neg_fraction), **prompts}
            return self._keep(*cached_mining(encoder, class_names, corpus, **settings))
        if isinstance(self.neg_count, bool) or not isinstance(self.neg_count, (int, np.integer)) or self.neg_count < 1:
            raise UserError(f"adaneg: neg_count={self.neg_count!r} must be a positive integer")
        settings = {"source": "adaneg-official", "count": int(self.neg_count), "fraction": float(self.quantile),
                    **prompts}
        return self._keep(*cached_mining(encoder, class_names, corpus, miner=mine_official, **settings))

    def stream_protocol(self) -> dict[str, Any]:
        if self.stream_order == "official":
            return {"seeds": (0,), "batch_size": self.batch_size, "order": "official"}
        return {"seeds": self.stream_seeds, "batch_size": self.batch_size, "order": "seeded"}

    def stream_permutation(self, n: int, seed: int) -> np.ndarray:
        """The order of a stream of ``n`` images (``stream_order``): seeded ``torch.randperm``, or the release
        evaluator's (:func:`official_stream_order`)."""
        from oodbench.stream import stream_order

        if self.stream_order not in STREAM_ORDERS:
            raise UserError(f"adaneg: stream_order={self.stream_order!r} must be one of {', '.join(STREAM_ORDERS)}")
        if self.stream_order == "seeded":
            return stream_order(n, seed)
        if not self.random_permute:
            raise UserError("adaneg: stream_order=official needs random_permute=True (the reference's order comes "
                            "from the torch.manual_seed(0) its grouping calls in every batch)")
        m = len(self.neg_text_)
        return official_stream_order(n, m - m % int(self.ngroup))

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
        if self.entropy_precision not in ENTROPY_PRECISIONS:
            raise UserError(f"adaneg: entropy_precision={self.entropy_precision!r} must be one of "
                            f"{', '.join(ENTROPY_PRECISIONS)}")
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
            ent = str(self.entropy_precision)
            for i in np.flatnonzero(conf_van > hi):
                memory.add(int(np.argmax(van[i, :c])), x[i], softmax_entropy(van[i, :c], ent))
            for i in np.flatnonzero(conf_van < lo):
                memory.add(c + int(np.argmax(van[i, c:])), x[i], softmax_entropy(van[i, c:], ent))
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
