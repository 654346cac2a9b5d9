"""CSP: the conjugated pool and the score against a plain re-implementation of the reference code, caching, errors."""

import itertools
import random

import numpy as np
import pytest
import torch

from oodbench.errors import UserError
from oodbench.features import Features
from oodbench.postprocessors import csp
from oodbench.testing.fixtures import FakeTextEncoder

CLASSES = ["cat", "red dog", "blue bird", "green fish"]

# The reference's prompt lists, written out again here (class_names.py of MengyuanChen21/NeurIPS2024-CSP).
REF_NOUN = ['a close-up photo of the nice {}.', 'a photo with the nice {}.', 'a good photo with the nice {}.',
            'a photo of the nice {}.', '{}', 'the {}', 'the good {}', 'the nice {}']
REF_SUPER = ['{} environment', '{} space', '{} object', '{} scene', '{} place', '{} item', '{} area', '{} view',
             '{} thing', '{} pattern', '{} structure', '{} landscape', '{} vista', '{} creature']
REF_ADJ = ['{}', 'a nice photo of {}', 'a good photo of {}', 'a close-up photo of {}']
REF_EXCLUDE = ["noun.person", "noun.quantity", "noun.group", "adj.pert"]


def _corpus(tmp_path, n_noun=240, n_adj=90, seed=1):
    """A corpus file with lexicographer files, words sharing some tokens with the class names."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(60)] + ["cat", "dog", "red", "bird", "fish"]
    lines = ["# test corpus", "noun\tnoun.artifact\tcat"]  # the class name itself: cos = 1 > 0.95
    for i in range(n_noun):
        lex = ["noun.artifact", "noun.person", "noun.plant", "noun.group"][i % 4]
        lines.append(f"noun\t{lex}\t{' '.join(rng.choice(vocab, 1 + i % 3))} n{i}")
    for i in range(n_adj):
        lex = ["adj.all", "adj.pert", "adj.ppl"][i % 3]
        lines.append(f"adj\t{lex}\ta{i} {rng.choice(vocab)}")
    # a word of an excluded file repeated in a kept one (kept once), and an adjective repeating a noun (dropped)
    lines += ["noun\tnoun.person\tdupword", "noun\tnoun.plant\tdupword", "adj\tadj.all\tdupword"]
    path = tmp_path / "corpus.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _feats(n=4, dim=32, seed=0, classes=CLASSES):
    image = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return Features({"image": image}, {"class_names": list(classes)}, "x")


# ---------------------------------------------------------------------------- the reference, written plainly
def _ref_pool(encoder, corpus_path, classes, seed=0, q=0.95, topk=0.15):
    """multi_modal.py's pool construction (files already in order; txt_exclude; random.seed; ensembles)."""
    enc = lambda prompts: torch.tensor(np.asarray(encoder.encode_text(prompts)), dtype=torch.float32)  # noqa: E731
    rows = [ln.split("\t") for ln in open(corpus_path).read().splitlines() if ln and not ln.startswith("#")]
    pos = enc([t.format(c) for t, c in itertools.product(REF_NOUN, classes)])
    pos = pos.view(-1, len(classes), pos.shape[-1]).mean(dim=0)
    pos = pos / pos.norm(dim=-1, keepdim=True)
    random.seed(seed)
    words_noun, words_adj, nouns, phrases, dedup = [], [], [], [], {}
    for part, lexfile, word in rows:
        if lexfile in REF_EXCLUDE or word in dedup:
            continue
        dedup[word] = None
        if part == "noun":
            nouns.append(word)
            words_noun += [t.format(word) for t in REF_NOUN]
        else:
            cand = random.choice(REF_SUPER).format(word)
            phrases.append(cand)
            words_adj += [t.format(cand) for t in REF_ADJ]
    d = pos.shape[-1]
    neg = torch.cat([enc(words_noun).view(-1, len(REF_NOUN), d).mean(dim=1),
                     enc(words_adj).view(-1, len(REF_ADJ), d).mean(dim=1)])
    neg = neg / neg.norm(dim=-1, keepdim=True)
    tmp = neg @ pos.T
    sim = torch.quantile(tmp, q=q, dim=-1)
    sim[tmp.max(dim=1)[0] > 0.95] = 1.0
    nn = len(nouns)
    ind_noun = torch.argsort(sim[:nn], stable=True)[: int(nn * topk)]
    ind_adj = torch.argsort(sim[nn:], stable=True)[: int((len(sim) - nn) * topk)]
    words = nouns + phrases
    sel_words = [words[i] for i in ind_noun] + [words[nn + i] for i in ind_adj]
    return pos, torch.cat([neg[:nn][ind_noun], neg[nn:][ind_adj]]), sel_words, phrases


def _ref_score(image, pos_text, neg_text, ngroup, t=1.0):
    """clip_ood.py's grouping (float64 softmax; the permutation from the CPU generator seeded 0)."""
    x = torch.tensor(image, dtype=torch.float32)
    x = x / x.norm(dim=-1, keepdim=True)
    pos, neg = 100.0 * x @ pos_text.T, 100.0 * x @ neg_text.T
    drop = neg.shape[1] % ngroup
    if drop > 0:
        neg = neg[:, :-drop]
    torch.manual_seed(0)
    idx = torch.randperm(neg.shape[1])
    negs = neg.T[idx].T.reshape(pos.shape[0], ngroup, -1)
    scores = []
    for i in range(ngroup):
        full = (torch.cat([pos, negs[:, i, :]], dim=-1) / t).double().softmax(dim=-1)
        scores.append(full[:, : pos.shape[1]].sum(dim=-1))
    return torch.stack(scores, dim=-1).mean(dim=-1).numpy()


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("ngroup, t", [(5, 1.0), (1, 1.0), (3, 0.5)])
def test_pool_and_score_equal_the_reference(tmp_path, ngroup, t):
    path = _corpus(tmp_path)
    enc = FakeTextEncoder(cache_dir=tmp_path / "cache")
    pp = csp.CSP(corpus=path, ngroup=ngroup, temperature=t).fit(_feats(), enc)
    pos, neg, words, phrases = _ref_pool(FakeTextEncoder(), path, CLASSES)
    assert csp.pool_words(csp.corpus_rows(path))[1] == phrases  # every conjugated phrase, selected or not
    assert list(pp.neg_words_) == words
    np.testing.assert_allclose(pp.pos_text_, pos.numpy(), atol=1e-6)
    np.testing.assert_allclose(pp.neg_text_, neg.numpy(), atol=1e-6)
    image = _feats(50)["image"]
    np.testing.assert_allclose(pp.score(_feats(50)), _ref_score(image, pos, neg, ngroup, t), atol=1e-6, rtol=0)


def _word_folder(tmp_path):
    """The reference's layout: one word per line in noun.<lexfile>.txt / adj.<lexfile>.txt files, excluded files,
    a word repeated across files (an excluded one first), an adjective repeating a noun, a file that is no word
    file."""
    rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(40)] + ["cat", "dog", "red", "bird", "fish"]
    folder = tmp_path / "txtfiles"
    folder.mkdir()
    files = {"noun.artifact": ["cat"], "noun.person": ["dupword"], "noun.plant": ["dupword"], "noun.group": [],
             "adj.all": ["dupword"], "adj.pert": [], "adj.ppl": []}
    for i in range(120):
        lex = ["noun.artifact", "noun.person", "noun.plant", "noun.group"][i % 4]
        files[lex].append(f"{' '.join(rng.choice(vocab, 1 + i % 3))} n{i}")
    for i in range(45):
        files[["adj.all", "adj.pert", "adj.ppl"][i % 3]].append(f"a{i} {rng.choice(vocab)}")
    for lex, words in files.items():
        (folder / f"{lex}.txt").write_text("\n".join(words) + "\n")
    (folder / "notes.md").write_text("not a word file\n")
    return folder


def _ref_rows(folder, tmp_path):
    """The reference's reading of the folder (files in listing order, here sorted; every line stripped, repeats
    kept: the pool construction de-duplicates), written as a corpus file for _ref_pool."""
    import os

    lines = []
    for name in sorted(os.listdir(folder)):
        part = name.split(".")[0]
        if part not in ("noun", "adj"):
            continue
        with open(os.path.join(folder, name)) as f:
            lines += [f"{part}\t{name[:-4]}\t{line.strip()}" for line in f.readlines()]
    path = tmp_path / "ref_rows.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_pool_from_the_references_word_files_equals_the_reference(tmp_path):
    """Given a folder of the reference's word files, the pool and the scores are the reference's."""
    folder = _word_folder(tmp_path)
    pp = csp.CSP(corpus=str(folder), ngroup=5).fit(_feats(), FakeTextEncoder(cache_dir=tmp_path / "cache"))
    pos, neg, words, phrases = _ref_pool(FakeTextEncoder(), _ref_rows(folder, tmp_path), CLASSES)
    assert csp.pool_words(csp.corpus_rows(str(folder)))[1] == phrases
    assert list(pp.neg_words_) == words
    # files are read in sorted order: "dupword" is first met in adj.all, so it is an adjective phrase, once
    nouns = csp.pool_words(csp.corpus_rows(str(folder)))[0]
    assert "dupword" not in nouns and sum(p.startswith("dupword ") for p in phrases) == 1
    np.testing.assert_allclose(pp.pos_text_, pos.numpy(), atol=1e-6)
    np.testing.assert_allclose(pp.neg_text_, neg.numpy(), atol=1e-6)
    np.testing.assert_allclose(pp.score(_feats(50)), _ref_score(_feats(50)["image"], pos, neg, 5), atol=1e-6, rtol=0)


def test_pool_rules(tmp_path):
    path = _corpus(tmp_path)
    pp = csp.CSP(corpus=path, ngroup=2).fit(_feats(), FakeTextEncoder(cache_dir=tmp_path / "c"))
    _, _, _, phrases = _ref_pool(FakeTextEncoder(), path, CLASSES)
    # 1 + 240 + 2 nouns, 90 + 1 adjectives; person/group, adj.pert and repeats dropped → 122 nouns, 60 phrases
    nouns, _ = csp.pool_words(csp.corpus_rows(path))
    assert len(nouns) == 122 and nouns.count("dupword") == 1 and len(phrases) == 60
    assert pp.n_neg_nouns_ == int(122 * 0.15) and len(pp.neg_words_) == int(122 * 0.15) + int(60 * 0.15)
    assert "cat" not in pp.neg_words_  # best ID cosine 1 > 0.95: never selected
    rng = random.Random(0)
    kept_adj = [f"a{i}" for i in range(90) if i % 3 != 1]
    assert [p.split()[0] for p in phrases] == kept_adj
    assert all(ph.split()[-1] == rng.choice(REF_SUPER).split()[-1] for ph in phrases)
    adj_part = pp.neg_words_[pp.n_neg_nouns_:]
    assert set(adj_part) <= set(phrases) and all(w.split()[-1] in {s.split()[-1] for s in REF_SUPER} for w in adj_part)
    # another adjective seed draws other superclass words
    other = csp.pool_words(csp.corpus_rows(path), seed=1)[1]
    assert other != phrases and [p.split()[0] for p in other] == kept_adj


def test_shipped_pool_counts():
    nouns, phrases = csp.pool_words(csp.corpus_rows())
    rows = csp.corpus_rows()
    assert len(rows) == 58514 + 12280
    excluded = sum(r[1] in REF_EXCLUDE for r in rows)
    assert len(nouns) + len(phrases) == len(rows) - excluded
    assert len(phrases) == sum(r[0] == "adj" and r[1] != "adj.pert" for r in rows)


def test_pool_is_cached_per_encoder_and_classes(tmp_path):
    path = _corpus(tmp_path)
    enc = FakeTextEncoder(cache_key="k1", cache_dir=tmp_path / "c")
    a = csp.CSP(corpus=path, ngroup=2).fit(_feats(), enc)
    assert len(list((tmp_path / "c").glob("csp-*.npz"))) == 1
    csp._MEMORY_CACHE.clear()
    enc2 = FakeTextEncoder(cache_key="k1", cache_dir=tmp_path / "c")
    b = csp.CSP(corpus=path, ngroup=2).fit(_feats(), enc2)
    assert enc2.calls == 0 and b.cache_key_ == a.cache_key_
    np.testing.assert_array_equal(a.neg_text_, b.neg_text_)
    c = csp.CSP(corpus=path, ngroup=2).fit(_feats(), FakeTextEncoder(cache_key="k2", cache_dir=tmp_path / "c"))
    d = csp.CSP(corpus=path, ngroup=2, pool_seed=1).fit(_feats(), enc2)
    other = _feats(classes=CLASSES[:3])
    e = csp.CSP(corpus=path, ngroup=2).fit(other, enc2)
    assert len({a.cache_key_, c.cache_key_, d.cache_key_, e.cache_key_}) == 4


def test_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="text encoder"):
        csp.CSP().fit(_feats(), None)
    with pytest.raises(UserError, match="templates"):
        csp.CSP(templates="nope").fit(_feats(), FakeTextEncoder())
    with pytest.raises(UserError, match="class names"):
        csp.CSP().fit(Features({"image": np.zeros((1, 4), np.float32)}, {}, "x"), FakeTextEncoder())
    pp = csp.CSP(corpus=_corpus(tmp_path), ngroup=1000).fit(_feats(), FakeTextEncoder(cache_dir=tmp_path / "c"))
    with pytest.raises(UserError, match="exceeds"):
        pp.score(_feats(3))


def test_pool_similarity_hand_computed():
    pos = np.eye(3, dtype=np.float32)  # 3 ID directions
    cand = np.array([[1, 0, 0], [0.6, 0.8, 0], [0.96, 0.28, 0]], dtype=np.float32)  # cos rows: see below
    # cosines [1,0,0] -> max 1 > 0.95 -> 1;  [0.6,0.8,0] -> quantile 0.5 = 0.6;  [0.96,0.28,0] -> max 0.96 -> 1
    np.testing.assert_allclose(csp.pool_similarity(cand, pos, 0.5, 0.95), [1.0, 0.6, 1.0], atol=1e-6)
    # without the rule: the plain quantiles 0, 0.6, 0.28
    np.testing.assert_allclose(csp.pool_similarity(cand, pos, 0.5, 2.0), [0.0, 0.6, 0.28], atol=1e-6)


@pytest.fixture()
def digit_folders(tmp_path):
    """A tiny ad-hoc benchmark as image folders (6 digit classes, one OOD folder) from the embedded digits data."""
    from PIL import Image

    from oodbench.datasets.digits import resolve_digits

    bench = resolve_digits()

    def dump(src, folder, n, by_class):
        idx = np.linspace(0, len(src) - 1, n).round().astype(int)
        for i in idx:
            sub = folder / (f"digit {src.labels[i]}" if by_class else "images")
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(src.images[i]).save(sub / f"{i:04d}.png")

    dump(bench.id_test, tmp_path / "id_test", 36, True)
    dump(bench.id_val, tmp_path / "id_val", 24, True)
    dump(next(iter(bench.ood.values())), tmp_path / "ood", 16, False)
    labels = sorted({p.name for p in (tmp_path / "id_test").iterdir()} | {p.name for p in (tmp_path / "id_val").iterdir()})
    (tmp_path / "classes.txt").write_text("\n".join(labels) + "\n")
    return tmp_path


def test_cli_run_setar_with_csp(digit_folders, capsys):
    from oodbench.cli import main
    from oodbench.results import ResultsStore

    d = digit_folders
    args = ["--backbone", "test_clip_tiny", "--id-test", str(d / "id_test"), "--id-val", str(d / "id_val"),
            "--ood", f"blobs={d / 'ood'}", "--classes", str(d / "classes.txt"), "--cache-dir", str(d / "cache"),
            "--results-root", str(d / "runs"), "-q"]
    assert main(["run", "--post", "csp", "--method", "setar", "--ratios", "0,0.3", "--topk", "1",
                 "--modality", "vision", *args]) == 0
    out = capsys.readouterr().out
    assert "CSP" in out and "SeTAR" in out and "average" in out
    runs = ResultsStore(d / "runs").runs()
    assert sorted(r.method for r in runs) == ["none", "setar"]
    assert all(r.postprocessor["name"] == "csp" and r.postprocessor["params"]["ngroup"] == 100 for r in runs)
    assert len(list((d / "cache" / "neglabel").glob("csp-*.npz"))) == 1  # vision-only plan: one text tower, one pool
