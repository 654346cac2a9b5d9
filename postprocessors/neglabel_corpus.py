"""The NegLabel candidate-word corpus: building it from WordNet 3.0, and loading the shipped copy.

NegLabel (XueJiang16/NegLabel, ``txtfiles/``) mines negative labels from WordNet lexicographer files: the
noun files ``noun.{Tops, act, artifact, attribute, body, cognition, communication, event, feeling, group,
location, motive, object, person, phenomenon, plant, possession, process, quantity, relation, shape, state,
substance, time}`` (no ``noun.animal``, no ``noun.food``) and the adjective files ``adj.all``, ``adj.pert``,
``adj.ppl``; exact duplicates are dropped across files, the first occurrence wins.

This module rebuilds that corpus from the WordNet 3.0 database files (``data.noun``, ``data.adj``):

* one word per synset, its **first lemma**, lower-cased, ``_`` replaced by a space, adjective syntactic
  markers (``(a)``, ``(p)``, ``(ip)``) removed — the form of the words in NegLabel's shipped selection
  (``selected_neg_labels_in1k_10k.txt``: "the nice bird's-foot trefoil", "This is a in line photo");
* synsets in database order inside a lexicographer file; noun files in sorted name order, then ``adj.all``,
  ``adj.pert``, ``adj.ppl`` (the reference reads its files in ``os.listdir`` order, which is filesystem
  dependent; that order only decides whether a word present in both parts counts as noun or adjective);
* global de-duplication, first occurrence wins.

Counts (WordNet 3.0): 80,389 per-file unique lines (the reference's ``txtfiles`` hold 79,455 lines), and after
global de-duplication 58,514 nouns + 12,280 adjectives = 70,794 words. NegLabel's shipped ImageNet-1K
selection (8,578 nouns + 1,921 adjectives = 15 % of each part) implies about 57,190 + 12,810 = 70,000 words,
so this rebuild is within ~1 % of the reference corpus; the exact reference files are not redistributed.

A folder in the references' own layout (one word per line in ``noun.<name>.txt`` and ``adj.<name>.txt`` files,
as NegLabel's ``txtfiles/`` and the folders CSP and AdaNeg read) is accepted wherever a corpus file is:
:func:`read_word_files` reads its files in sorted name order (the references use ``os.listdir`` order), words
stripped, empty lines skipped, duplicates kept (each method de-duplicates as its reference does; for NegLabel the
first occurrence wins).

The result ships as ``data/neglabel_wordnet3.0.tsv.gz`` (``part<TAB>lexicographer file<TAB>word`` lines,
``#`` comments) next to WordNet's licence (``data/WORDNET_LICENSE``). Rebuild it with::

    python -m oodbench.postprocessors.neglabel_corpus --wordnet-dir /usr/share/wordnet --out FILE

(Debian/Ubuntu package ``wordnet-base``). Nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from oodbench.errors import DataError

# WordNet's lexicographer file numbers (``lex_filenum`` in the data files) of the files NegLabel uses.
NOUN_FILES = {
    3: "noun.Tops", 4: "noun.act", 6: "noun.artifact", 7: "noun.attribute", 8: "noun.body",
    9: "noun.cognition", 10: "noun.communication", 11: "noun.event", 12: "noun.feeling", 14: "noun.group",
    15: "noun.location", 16: "noun.motive", 17: "noun.object", 18: "noun.person", 19: "noun.phenomenon",
    20: "noun.plant", 21: "noun.possession", 22: "noun.process", 23: "noun.quantity", 24: "noun.relation",
    25: "noun.shape", 26: "noun.state", 27: "noun.substance", 28: "noun.time",
}
ADJ_FILES = {0: "adj.all", 1: "adj.pert", 44: "adj.ppl"}
DEFAULT_CORPUS = "wordnet"
_SHIPPED = {"wordnet": "neglabel_wordnet3.0.tsv.gz"}
_MARKER = re.compile(r"\((a|p|ip)\)$")


@dataclass(frozen=True)
class Corpus:
    """Candidate words of NegLabel, nouns and adjectives, in corpus order."""

    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    digest: str  # sha256 of the file's decompressed text; part of every mining cache key
    source: str


# ----------------------------------------------------------------------------------------------- building
def read_lexfiles(wordnet_dir: str | Path) -> dict[str, list[str]]:
    """First lemma of every synset, per lexicographer file, in database order.

    Args:
        wordnet_dir: folder holding WordNet 3.0's ``data.noun`` and ``data.adj``.
    Returns:
        ``{lexfile name: [word, ...]}`` for the files in :data:`NOUN_FILES` and :data:`ADJ_FILES`.
    """
    wordnet_dir = Path(wordnet_dir)
    wanted = {**NOUN_FILES, **ADJ_FILES}
    out: dict[str, list[str]] = {name: [] for name in wanted.values()}
    for db in ("data.noun", "data.adj"):
        path = wordnet_dir / db
        if not path.is_file():
            raise DataError(f"WordNet database file {path} not found; pass the folder holding data.noun and data.adj")
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # licence header
                    continue
                fields = line.split(" ", 5)
                lex = int(fields[1])
                if lex in wanted:
                    out[wanted[lex]].append(_MARKER.sub("", fields[4]).replace("_", " ").lower())
    return out


def build_corpus(wordnet_dir: str | Path) -> list[tuple[str, str, str]]:
    """The de-duplicated corpus as ``(part, lexfile, word)`` rows, nouns first (see the module docstring)."""
    files = read_lexfiles(wordnet_dir)
    order = sorted(NOUN_FILES.values()) + [ADJ_FILES[k] for k in sorted(ADJ_FILES, key=lambda k: ADJ_FILES[k])]
    seen: set[str] = set()
    rows = []
    for name in order:
        part = "noun" if name.startswith("noun.") else "adj"
        for word in files[name]:
            if word not in seen:
                seen.add(word)
                rows.append((part, name, word))
    return rows


def corpus_text(rows: list[tuple[str, str, str]]) -> str:
    """The file text of ``rows`` with a provenance header."""
    n_noun = sum(r[0] == "noun" for r in rows)
    header = [
        "# NegLabel candidate words (nouns, then adjectives) built from WordNet 3.0 by",
        "# `python -m oodbench.postprocessors.neglabel_corpus`: first lemma of each synset of the noun files",
        "# " + ", ".join(sorted(NOUN_FILES.values())) + " and the adjective files adj.all, adj.pert, adj.ppl;",
        "# lower-cased, '_' -> ' ', duplicates dropped (first wins).",
        f"# {n_noun} nouns, {len(rows) - n_noun} adjectives. WordNet 3.0 Copyright 2006 by Princeton University.",
        "# All rights reserved. Licence: see WORDNET_LICENSE next to this file.",
        "# part\tlexicographer_file\tword",
    ]
    return "\n".join(header + ["\t".join(r) for r in rows]) + "\n"


def write_corpus(rows: list[tuple[str, str, str]], out: str | Path) -> None:
    """Write ``rows`` as gzip (mtime 0, so a rebuild is byte-identical)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(corpus_text(rows).encode("utf-8"))


# ------------------------------------------------------------------------------------------------ loading
def parse_corpus(text: str, source: str) -> Corpus:
    """Parse corpus file text (``part<TAB>lexfile<TAB>word`` or ``part<TAB>word`` lines, ``#`` comments)."""
    nouns, adjs = [], []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        part, word = cols[0], cols[-1]
        if len(cols) not in (2, 3) or part not in ("noun", "adj") or not word:
            raise DataError(f"NegLabel corpus {source}, line {i}: expected 'noun|adj<TAB>[lexfile<TAB>]word'")
        (nouns if part == "noun" else adjs).append(word)
    if not nouns and not adjs:
        raise DataError(f"NegLabel corpus {source} holds no words")
    return Corpus(tuple(nouns), tuple(adjs), hashlib.sha256(text.encode("utf-8")).hexdigest(), source)


def read_word_files(folder: str | Path) -> list[tuple[str, str, str]]:
    """``(part, lexicographer file, word)`` rows of a folder of reference word files, duplicates kept.

    Files named ``noun.*.txt`` / ``adj.*.txt`` (part = the name before the first dot; the lexicographer file = the
    name without ``.txt``) are read in sorted name order, one stripped word per non-empty line; other files are
    ignored.
    """
    folder = Path(folder).expanduser()
    rows = []
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        part = name.split(".")[0]
        if part not in ("noun", "adj") or not name.endswith(".txt"):
            continue
        text = (folder / name).read_text(encoding="utf-8", errors="replace")
        rows += [(part, name[: -len(".txt")], w.strip()) for w in text.splitlines() if w.strip()]
    if not rows:
        raise DataError(f"word-file folder {folder} holds no noun.*.txt or adj.*.txt file with words")
    return rows


@lru_cache(maxsize=4)
def load_corpus(name_or_path: str = DEFAULT_CORPUS) -> Corpus:
    """The shipped corpus (``"wordnet"``), a corpus file (plain or ``.gz``) in the same format, or a folder of
    reference word files (:func:`read_word_files`; noun files first, as in the shipped corpus, so a word that is both
    noun and adjective is a noun; repeated words dropped, the first occurrence wins)."""
    if name_or_path not in _SHIPPED and Path(name_or_path).expanduser().is_dir():
        rows = sorted(read_word_files(name_or_path), key=lambda row: row[0] != "noun")  # stable: file order kept
        seen: dict[str, None] = {}
        lines = []
        for part, lexfile, word in rows:
            if word not in seen:
                seen[word] = None
                lines.append(f"{part}\t{lexfile}\t{word}")
        corpus = parse_corpus("\n".join(lines) + "\n", str(Path(name_or_path).expanduser()))
        full = "".join(f"{p}\t{f}\t{w}\n" for p, f, w in rows)  # the digest covers every row, duplicates too
        return Corpus(corpus.nouns, corpus.adjectives, hashlib.sha256(full.encode("utf-8")).hexdigest(), corpus.source)
    if name_or_path in _SHIPPED:
        data = resources.files("oodbench.postprocessors").joinpath("data", _SHIPPED[name_or_path]).read_bytes()
        source = name_or_path
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise DataError(f"NegLabel corpus '{name_or_path}' is neither a shipped corpus "
                            f"({', '.join(_SHIPPED)}) nor a file nor a folder of word files")
        data, source = path.read_bytes(), str(path)
    if data[:2] == b"\x1f\x8b":
        data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    return parse_corpus(data.decode("utf-8"), source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the NegLabel word corpus from WordNet 3.0 database files.")
    parser.add_argument("--wordnet-dir", required=True, help="folder with data.noun and data.adj (e.g. wordnet-base)")
    parser.add_argument("--out", required=True, help="output file (.tsv.gz)")
    args = parser.parse_args(argv)
    rows = build_corpus(args.wordnet_dir)
    write_corpus(rows, args.out)
    n_noun = sum(r[0] == "noun" for r in rows)
    sys.stdout.write(f"wrote {args.out}: {n_noun} nouns + {len(rows) - n_noun} adjectives = {len(rows)} words\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
