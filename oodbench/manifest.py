"""The built-in backbones, modifiers, postprocessors, benchmarks, methods and papers, registered lazily.

Each line names what the ``@register`` decorator of the module registers on import: kind, name, the object as
``"module:attribute"``, its summary (the first docstring line, as ``oodbench list`` shows it) and its aliases.
The registry imports this module on the first lookup; a built-in's own module is imported only when the built-in
is requested, so that ``oodbench list`` and ``--help`` import no model library.

Adding a built-in: decorate it as usual and add its line here; ``tests/foundation/test_cli_startup.py`` fails
while the two disagree (it imports every module and compares).
"""

from __future__ import annotations

from oodbench.registry import register_lazy

_B = "oodbench.backbones"
_M = "oodbench.methods"
_P = "oodbench.postprocessors"
_D = "oodbench.datasets"
_R = "oodbench.papers"

#: (kind, name, "module:attribute", summary, aliases)
BUILTINS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    # ------------------------------------------------------------------------------------------ backbones
    ("backbones", "clip_vit_b16", f"{_B}.clip_models:clip_vit_b16",
     "OpenAI CLIP ViT-B/16 (open_clip ViT-B-16-quickgelu), weights tag 'openai' by default.", ()),
    ("backbones", "clip_vit_l14", f"{_B}.clip_models:clip_vit_l14",
     "OpenAI CLIP ViT-L/14 (open_clip ViT-L-14-quickgelu), weights tag 'openai' by default.", ()),
    ("backbones", "test_clip_tiny", f"{_B}.clip_models:tiny_clip",
     "Tiny seeded random CLIP for tests (32 px, patch 8, width 64, 2+2 layers, context 16).", ()),
    ("backbones", "digits_clip", f"{_B}.digits:digits_clip",
     "Tiny OpenAI-style CLIP (32 px, 4-px patches) trained on the embedded digits benchmark; weights ship with "
     "oodbench.", ()),
    ("backbones", "swinv2_b", f"{_B}.classifier_models:swinv2_b",
     "Swin-V2-B window 16, 256 px (timm swinv2_base_window16_256), ImageNet-1K weights tag 'ms_in1k' by default.",
     ()),
    ("backbones", "resnet50", f"{_B}.classifier_models:resnet50",
     "ResNet-50 (timm resnet50), torchvision ImageNet-1K weights tag 'tv_in1k' by default.", ()),
    ("backbones", "test_swin_tiny", f"{_B}.classifier_models:tiny_swin",
     "Tiny seeded random Swin-V2 for tests (64 px, 4 stages of 2 blocks, 10 classes).", ()),
    ("backbones", "test_vit_tiny", f"{_B}.classifier_models:tiny_vit",
     "Tiny seeded random ViT classifier for tests (32 px, patch 8, width 64, 2 blocks, 10 classes).", ()),
    ("backbones", "test_resnet_tiny", f"{_B}.classifier_models:tiny_resnet",
     "Tiny seeded random ResNet-50 for tests (one bottleneck per stage, 64 px, 10 classes).", ()),
    # ------------------------------------------------------------------------------------------ modifiers
    ("modifiers", "none", f"{_M}.none:NoModifier", "Leaves the backbone as loaded (the vanilla model).", ()),
    ("modifiers", "setar", f"{_M}.setar.modifier:SetarModifier",
     "Replaces weights by low-rank approximations of their pristine values, reversibly.", ()),
    # ------------------------------------------------------------------------------------- postprocessors
    ("postprocessors", "mcm", f"{_P}.mcm:MCM",
     "MCM (Ming et al., NeurIPS 2022): max softmax of image-text cosines at temperature tau.", ()),
    ("postprocessors", "glmcm", f"{_P}.glmcm:GLMCM",
     "GL-MCM (Miyai et al.): MCM of the global embedding plus lambda x the best patch-level MCM.",
     ("gl_mcm", "gl-mcm")),
    ("postprocessors", "glmcm_logits", f"{_P}.glmcm:GLMCMLogits",
     "GL-MCM over a classifier's logits: max softmax of the global logits plus lambda x that of the best patch.",
     ("gl_mcm_logits", "gl-mcm-logits")),
    ("postprocessors", "adaneg", f"{_P}.adaneg:AdaNeg", "AdaNeg (Zhang & Zhang, NeurIPS 2024): NegLabel against proxies adapted from a memory of the test stream.", ()),
    ("postprocessors", "neglabel", f"{_P}.neglabel:NegLabel",
     "NegLabel (Jiang et al., ICLR 2024): ID softmax mass against mined negative labels, averaged over groups.",
     ()),
    ("postprocessors", "csp", f"{_P}.csp:CSP", "CSP (Chen et al., NeurIPS 2024): NegLabel's score over a conjugated semantic pool.", ()),  # noqa: E501
    ("postprocessors", "msp", f"{_P}.msp:MSP",
     "MSP (Hendrycks & Gimpel, ICLR 2017): maximum softmax probability of the logits.", ()),
    ("postprocessors", "energy", f"{_P}.energy:Energy",
     "Energy (Liu et al., NeurIPS 2020): T x logsumexp of the logits / T.", ("ebo",)),
    ("postprocessors", "maxlogit", f"{_P}.maxlogit:MaxLogit",
     "MaxLogit (Hendrycks et al., ICML 2022): the largest logit.", ("mls", "max_logit")),
    ("postprocessors", "react", f"{_P}.react:ReAct",
     "ReAct (Sun et al., NeurIPS 2021): energy of the last layer on penultimate features clipped at c.", ()),
    ("postprocessors", "dice", f"{_P}.dice:DICE",
     "DICE (Sun & Li, ECCV 2022): energy of the last layer with weights sparsified by mean ID contribution.", ()),
    ("postprocessors", "ash_p", f"{_P}.ash:ASHP",
     "ASH-P (Djurisic et al., ICLR 2023): prune all but the top (100-p)% activations, then energy.", ()),
    ("postprocessors", "ash_b", f"{_P}.ash:ASHB",
     "ASH-B (Djurisic et al., ICLR 2023): prune, binarise kept activations to s1/k, then energy.", ()),
    ("postprocessors", "ash_s", f"{_P}.ash:ASHS",
     "ASH-S (Djurisic et al., ICLR 2023): prune, scale kept activations by exp(s1/s2), then energy.", ()),
    ("postprocessors", "knn", f"{_P}.knn:KNN",
     "KNN (Sun et al., ICML 2022): negative distance to the k-th nearest normalised ID feature.", ()),
    # ----------------------------------------------------------------------------------------- benchmarks
    ("benchmarks", "digits", f"{_D}.digits:digits_benchmark",
     "Embedded digits benchmark (offline, 32 px): ID digits 0-5, near-OOD 6-9, far-OOD "
     "textures/faces/photos/noise.", ()),
    ("benchmarks", "digits_fs", f"{_D}.digits:digits_fs_benchmark",
     "digits, full-spectrum: the ID test images inverted and shifted are covariate-shifted ID, scored as ID.", ()),
    ("benchmarks", "imagenet1k", f"{_D}.imagenet1k:imagenet1k",
     "ImageNet-1K (SeTAR layout): ID test 50,000 / val 1,000; far-OOD iNaturalist, SUN, Places, Texture.",
     ("imagenet", "in1k")),
    ("benchmarks", "imagenet1k_fs", f"{_D}.imagenet1k:imagenet1k_fs",
     "ImageNet-1K (SeTAR layout), full-spectrum: ImageNet-V2, -R, -Sketch, -A scored as ID beside the ID test.",
     ("imagenet1k_fsood", "imagenet-fs")),
    ("benchmarks", "openood_imagenet1k", f"{_D}.openood_imagenet1k:openood_imagenet1k",
     "OpenOOD v1.5 ImageNet-1K: near SSB-hard, NINCO; far iNaturalist, Textures, OpenImage-O; OOD-val "
     "OpenImage-O val.", ("openood_imagenet", "openood-imagenet1k")),
    ("benchmarks", "openood_imagenet1k_fs", f"{_D}.openood_imagenet1k:openood_imagenet1k_fs",
     "OpenOOD v1.5 ImageNet-1K, full-spectrum: the same OOD sets; ImageNet-V2, -R, -Sketch, -A scored as ID.",
     ("openood_imagenet1k_fsood", "openood-imagenet1k-fs")),
    ("benchmarks", "ssb_hard", f"{_D}.ssb_hard:ssb_hard",
     "ImageNet-1K (SeTAR ID splits) vs near-OOD SSB-hard (49,000, OpenOOD imglist).",
     ("imagenet1k_ssb_hard", "ssb-hard")),
    ("benchmarks", "voc", f"{_D}.voc:voc",
     "Pascal-VOC (SeTAR layout): 14 classes, ID val 94 / test 906; OOD the four ImageNet sets + ImageNet22K, "
     "COCO.", ("pascal-voc", "pascal_voc")),
    # -------------------------------------------------------------------------------------------- methods
    ("methods", "none", f"{_M}.none:NoMethod",
     "The model as loaded (vanilla): no search, no training, no weight change.", ("vanilla",)),
    ("methods", "setar", f"{_M}.setar.method:SetarMethod",
     "SeTAR: low-rank approximation of weights chosen by a greedy search on the ID val split (or --plan FILE).",
     ()),
    ("methods", "setar-ft", f"{_M}.setar_ft:SetarFTMethod",
     "SeTAR+FT: train the minor singular components of a SeTAR plan's weights (LoCoOp loss, ID val split).",
     ("setar_ft",)),
    ("methods", "lora", f"{_M}.lora:LoraMethod",
     "LoRA baseline: rank-r adapters on W_up of every block of both towers (LoCoOp loss, ID val split).", ()),
    ("methods", "locoop", f"{_M}.locoop:LocoopMethod",
     "LoCoOp: learn 16 shared prompt context vectors with the LoCoOp loss (CLIP; or --prompts FILE).", ()),
    # --------------------------------------------------------------------------------------------- papers
    ("papers", "setar", f"{_R}.setar.experiments:SetarNeurips",
     "SeTAR, NeurIPS 2024 proceedings version: Tables 1-19 and the figures (CLIP, Swin-V2, ImageNet-1K, VOC).",
     ("neurips", "setar-neurips")),
    ("papers", "setar-arxiv", f"{_R}.setar.experiments:SetarArxiv",
     "SeTAR, extended arXiv version: Tables 1-22 (adds ResNet-50, near-OOD and NegLabel rows).", ("arxiv",)),
    ("papers", "digits", f"{_R}.digits:DigitsEdition",
     "The digits edition: SeTAR's tables and figures on the embedded digits benchmark (digits_clip, offline).",
     ("digits-edition",)),
    ("papers", "neglabel", f"{_R}.neglabel:NegLabelPaper",
     "NegLabel (Jiang et al., ICLR 2024), Table 1: zero-shot MCM and NegLabel, CLIP ViT-B/16, ImageNet-1K.", ()),
)

for _kind, _name, _target, _summary, _aliases in BUILTINS:
    register_lazy(_kind, _name, _target, summary=_summary, aliases=_aliases)
