"""Published search settings per backbone family and ID set (paper Table 10, official configs): one table."""

from oodbench.methods.setar.presets import PRESETS, search_preset


def test_paper_table_10():
    p = search_preset("clip-b16", "imagenet")
    assert (p.lam, p.top_k, p.batch_size, p.seed) == (0.10, 300, 512, 5)
    assert (search_preset("clip-b16", "voc").lam, search_preset("clip-b16", "voc").top_k) == (0.05, 4)
    assert (search_preset("clip-l14", "imagenet").lam, search_preset("clip-l14", "voc").top_k) == (0.50, 6)
    s = search_preset("swinv2-b", "imagenet")
    assert (s.lam, s.top_k, s.batch_size) == (0.01, 700, 384)
    assert search_preset("resnet50", "imagenet").lam == 0.0


def test_digits_row_and_default():
    p = search_preset("digits", "digits")
    assert (p.lam, p.top_k, p.batch_size) == (0.10, 2, 120)
    d = search_preset(None, "", num_classes=20, label="open_clip:RN50 on my-folders")
    assert (d.lam, d.top_k) == (0.10, 6) and "open_clip:RN50 on my-folders" in d.source
    # a CLIP-B/16 on an ID set without a published row is not given ImageNet's K = 300 for 6 classes
    assert search_preset("clip-b16", "", num_classes=6).top_k == 2


def test_one_table_keys_are_declared_families():
    assert {b for b, _ in PRESETS} == {"clip-b16", "clip-l14", "swinv2-b", "resnet50", "digits"}
    assert {d for _, d in PRESETS} <= {"imagenet", "voc", "digits", None}
