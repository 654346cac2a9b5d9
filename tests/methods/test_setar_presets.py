"""Published search settings per backbone and benchmark (paper Table 10, official configs)."""

from oodbench.methods.setar.presets import backbone_family, search_preset


def test_paper_table_10():
    p = search_preset("clip_vit_b16", "imagenet1k")
    assert (p.lam, p.top_k, p.batch_size, p.seed) == (0.10, 300, 512, 5)
    assert (search_preset("open_clip:ViT-B-16-quickgelu", "voc").lam, search_preset("clip_vit_b16", "voc").top_k) == (0.05, 4)
    assert (search_preset("clip_vit_l14", "imagenet1k").lam, search_preset("clip_vit_l14", "voc").top_k) == (0.50, 6)
    s = search_preset("swinv2_b", "imagenet1k")
    assert (s.lam, s.top_k, s.batch_size) == (0.01, 700, 384)
    assert search_preset("resnet50", "openood_imagenet1k").lam == 0.0


def test_benchmark_table_wins_and_default():
    h = {"default": {"lam": 0.2, "topk": 2, "batch_size": 120}}
    p = search_preset("digits_clip", "digits", hparams=h)
    assert (p.lam, p.top_k, p.batch_size) == (0.2, 2, 120)
    d = search_preset("open_clip:RN50", "my-folders", num_classes=20)
    assert (d.lam, d.top_k) == (0.10, 6)
    assert backbone_family("timm:swinv2_base_window16_256") == "swinv2-b"
