"""Backbones: wrappers that say what features a model produces (CLIP via open_clip, classifiers via timm)."""
