"""The NegLabel word corpus: the builder's rules on a hand-written WordNet excerpt, and the shipped file."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import pytest

from oodbench.errors import DataError
from oodbench.postprocessors import neglabel_corpus as nc

# WordNet 3.0 data-file lines: offset, lex_filenum, ss_type, w_cnt (hex), (word lex_id)*, ... | gloss
HEADER = "  1 This software and database is being provided to you, the LICENSEE, by Princeton\n"
NOUN = HEADER + "\n".join([
    "00001740 03 n 01 entity 0 000 | that which is perceived",
    "00002000 05 n 02 dog 0 domestic_dog 0 000 | an animal (noun.animal: excluded)",
    "00003000 18 n 02 Gottfried_Leibniz 0 Leibniz 0 000 | a person",
    "00004000 06 n 01 Bank 0 000 | an artifact",
    "00005000 04 n 01 run 0 000 | an act",
    "00006000 06 n 01 bank 0 000 | a duplicate after lower-casing",
    "00007000 13 n 01 pizza 0 000 | food: excluded",
]) + "\n"
ADJ = HEADER + "\n".join([
    "00001740 00 a 01 able 0 000 | having the means",
    "00002000 00 s 02 galore(ip) 0 abundant 0 000 | a satellite with a marker",
    "00003000 01 a 01 run 0 000 | duplicate of a noun: dropped",
    "00004000 44 a 01 beaten 0 000 | participial",
    "00005000 02 r 01 never 0 000 | an adverb file number: ignored",
]) + "\n"


@pytest.fixture
def wordnet_dir(tmp_path):
    (tmp_path / "data.noun").write_text(NOUN, encoding="latin-1")
    (tmp_path / "data.adj").write_text(ADJ, encoding="latin-1")
    return tmp_path


def test_builder_rules(wordnet_dir):
    rows = nc.build_corpus(wordnet_dir)
    # noun files in sorted order (noun.Tops, noun.act, noun.artifact, noun.person), first lemma, lower-cased,
    # '_' -> ' ', exact duplicates dropped (first wins), noun.animal / noun.food absent; then adjectives
    assert rows == [
        ("noun", "noun.Tops", "entity"),
        ("noun", "noun.act", "run"),
        ("noun", "noun.artifact", "bank"),
        ("noun", "noun.person", "gottfried leibniz"),
        ("adj", "adj.all", "able"),
        ("adj", "adj.all", "galore"),
        ("adj", "adj.ppl", "beaten"),
    ]


def test_write_then_load_round_trip_and_is_byte_stable(wordnet_dir, tmp_path):
    out1, out2 = tmp_path / "a.tsv.gz", tmp_path / "b.tsv.gz"
    assert nc.main(["--wordnet-dir", str(wordnet_dir), "--out", str(out1)]) == 0
    nc.write_corpus(nc.build_corpus(wordnet_dir), out2)
    assert out1.read_bytes() == out2.read_bytes()
    corpus = nc.load_corpus(str(out1))
    assert corpus.nouns == ("entity", "run", "bank", "gottfried leibniz")
    assert corpus.adjectives == ("able", "galore", "beaten")
    assert len(corpus.digest) == 64


def test_missing_wordnet_and_bad_corpus_files(tmp_path):
    with pytest.raises(DataError, match="data.noun"):
        nc.build_corpus(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("verb\tx\trun\n")
    with pytest.raises(DataError, match="line 1"):
        nc.load_corpus(str(bad))
    with pytest.raises(DataError, match="neither a shipped corpus"):
        nc.load_corpus(str(tmp_path / "nope.tsv"))


def test_shipped_corpus_counts_and_licence():
    corpus = nc.load_corpus("wordnet")
    assert (len(corpus.nouns), len(corpus.adjectives)) == (58514, 12280)
    words = corpus.nouns + corpus.adjectives
    assert len(set(words)) == len(words)
    # words of NegLabel's own shipped ImageNet selection are in the rebuilt corpus
    for w in ("prairie bird's-foot trefoil", "wrangell-st. elias national park", "genus caladenia", "de kooning"):
        assert w in corpus.nouns
    for w in ("in line", "sapiens", "bisontine", "al dente"):
        assert w in corpus.adjectives
    assert "golden retriever" not in words and "pizza" not in words  # no noun.animal, no noun.food
    data = resources.files("oodbench.postprocessors").joinpath("data")
    assert "Princeton University" in data.joinpath("WORDNET_LICENSE").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in data.joinpath("WORDNET_LICENSE").read_text()


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(),
                    reason="WordNet 3.0 database (Debian package wordnet-base) not installed")
def test_shipped_corpus_is_reproducible_from_wordnet(tmp_path):
    out = tmp_path / "rebuilt.tsv.gz"
    nc.write_corpus(nc.build_corpus("/usr/share/wordnet"), out)
    shipped = resources.files("oodbench.postprocessors").joinpath("data", "neglabel_wordnet3.0.tsv.gz").read_bytes()
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(shipped)
