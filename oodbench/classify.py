"""The official classification protocol of SeTAR's Table 7 (``test_classify.py``), over extracted features.

Reference: X1AOX1A/SeTAR ``test_classify.py`` (``run_classifications``): for a set with a label list (image ->
class name), the class names are the *distinct names of that list*; every name is embedded with the prompt
``"a photo of a {name}"``; an image's prediction is the argmax of its image-text similarity over those names;
the accuracy is over the images of the list. For ImageNet-1K the list holds WordNet first lemmas (998 distinct
names for 1,000 classes), which is why the printed accuracy differs from standard zero-shot accuracy with the
benchmark's class names.

A benchmark declares its lists in ``BenchmarkSpec.classify_labels`` (split name -> file). A label file is gzip
(or plain) TSV, one ``key<TAB>name`` per line: ``key`` is an image path relative to the split's folder, or a
folder ending in ``/`` that names every image under it.

The pipeline (:func:`oodbench.orchestration.pipeline.run`) calls :func:`classify_splits` with the model as modified by the
method, so text and image embeddings are those of the evaluated model; the result goes into every run's
``extra["classify"]``, which ``classify:<split>`` / ``classify:average`` cells of the tables read.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger("oodbench")

#: The prompt of ``test_classify.py`` (no trailing period).
PROMPT = "a photo of a {}"
PROTOCOL = ("SeTAR test_classify.py: prompts 'a photo of a {name}' over the distinct names of the set's label list, "
            "argmax of image-text similarity, accuracy over the listed images")


@dataclass(frozen=True)
class LabelList:
    """Image -> class name, by exact relative path or by folder prefix (``"n01440764/"``)."""

    exact: dict[str, str]
    folders: dict[str, str]

    @classmethod
    def read(cls, path: str | Path) -> "LabelList":
        path = Path(path)
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        exact, folders = {}, {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            key, sep, name = line.partition("\t")
            if not sep or not key or not name:
                raise ValueError(f"{path}: line {n}: expected 'key<TAB>name', got {line!r}")
            (folders if key.endswith("/") else exact)[key] = name
        return cls(exact, folders)

    def name_of(self, relpath: str) -> str | None:
        """The listed name of an image (None: not in the list)."""
        relpath = relpath.replace("\\", "/")
        if relpath in self.exact:
            return self.exact[relpath]
        head, sep, _ = relpath.rpartition("/")
        while sep:
            name = self.folders.get(head + "/")
            if name is not None:
                return name
            head, sep, _ = head.rpartition("/")
        return None

    def names(self) -> list[str]:
        """The distinct names of the list, sorted (the official code's ``list(set(...))`` order only matters
        for exact ties)."""
        return sorted(set(self.exact.values()) | set(self.folders.values()))


def official_accuracy(image: np.ndarray, relpaths: Sequence[str], labels: LabelList,
                      encode_text: Callable[[list[str]], np.ndarray]) -> dict[str, Any] | None:
    """Accuracy of the official protocol over the listed images among ``relpaths``.

    Args:
        image: ``[N, D]`` image embeddings (any norm), row i of the image ``relpaths[i]``.
        relpaths: ``[N]`` image paths relative to the split's folder.
        labels: the set's label list.
        encode_text: prompts -> ``[M, D]`` text embeddings (any norm) of the evaluated model.
    Returns:
        ``{"accuracy", "n" (listed images scored), "names" (distinct names)}``; None when no image is listed.
    """
    rows, truth = [], []
    for i, rel in enumerate(relpaths):
        name = labels.name_of(rel)
        if name is not None:
            rows.append(i)
            truth.append(name)
    if not rows:
        return None
    names = labels.names()
    index = {n: k for k, n in enumerate(names)}
    text = np.asarray(encode_text([PROMPT.format(n) for n in names]), dtype=np.float32)
    img = np.asarray(image, dtype=np.float32)[rows]
    img = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    pred = np.argmax(img @ text.T, axis=1)
    correct = pred == np.asarray([index[t] for t in truth])
    return {"accuracy": float(correct.mean()), "n": len(rows), "names": len(names)}


def kept_relpaths(source: Any, meta: dict[str, Any]) -> list[str] | None:
    """Relative paths of the rows of a split's features: the source's files minus those skipped as unreadable
    (``meta["skipped"]``); None for a source without paths."""
    relpaths = getattr(source, "relpaths", None)
    if relpaths is None:
        return None
    skipped = {s.get("path") for s in meta.get("skipped") or ()}
    if not skipped:
        return list(relpaths)
    return [rel for i, rel in enumerate(relpaths) if source.describe(i) not in skipped]


def classify_splits(backbone: Any, resolved: Any, features: dict[str, Any]) -> dict[str, Any] | None:
    """The official protocol on every split of ``resolved`` that has a label list and extracted image embeddings.

    Text embeddings come from ``backbone.shared_features({"text"}, names, PROMPT)`` of the model as it is now (with
    the method's modification applied). Returns the ``extra["classify"]`` entry, or None when nothing applies
    (no label list, no image embeddings, a backbone without a text tower); a method whose text features cannot
    take other class names (LoCoOp's learned prompts) is recorded as skipped with its reason.
    """
    lists = getattr(resolved.spec, "classify_labels", None) or {}
    if not lists or getattr(backbone, "kind", None) != "clip":
        return None
    from oodbench.errors import UserError

    sources = {s.name: s.source for s in resolved.splits()}
    sets: dict[str, Any] = {}

    def encode(prompts: list[str], names: list[str]) -> np.ndarray:
        return np.asarray(backbone.shared_features({"text"}, names, PROMPT)["text"], dtype=np.float32)

    for split, file in lists.items():
        feats = features.get(split)
        if feats is None or "image" not in feats or split not in sources:
            continue
        relpaths = kept_relpaths(sources[split], feats.meta or {})
        if relpaths is None or len(relpaths) != len(feats):
            continue
        labels = LabelList.read(file)
        names = labels.names()
        try:
            acc = official_accuracy(feats["image"], relpaths, labels, lambda prompts: encode(prompts, names))
        except UserError as exc:
            log.info("official classification of %s skipped: %s", split, exc)
            return {"protocol": PROTOCOL, "expected": list(lists), "sets": {}, "skipped": str(exc)}
        if acc is not None:
            sets[split] = acc | {"label_list": Path(file).name}
    return {"protocol": PROTOCOL, "expected": list(lists), "sets": sets} if sets else None


def classify_value(extra: dict[str, Any] | None, split: str) -> float | None:
    """``classify:<split>`` of a run's ``extra`` (a fraction); ``split == "average"``: the mean over every split
    the benchmark declares a label list for (None unless each of them has a value)."""
    entry = (extra or {}).get("classify") or {}
    sets = entry.get("sets") or {}
    if split != "average":
        return (sets.get(split) or {}).get("accuracy")
    values = [(sets.get(s) or {}).get("accuracy") for s in entry.get("expected") or ()]
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))
