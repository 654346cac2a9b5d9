"""How much ``--decode gpu`` moves the pixels and the scores, against the official PIL path.

The embedded digits benchmark's images are written as JPEG files of varied sizes (each 32-px image upscaled by
PIL bicubic to a random size, so that the preprocessing has to shrink it again), then the digits CLIP extracts
features twice — through the PIL path and through :mod:`oodbench.data.decode` — and MCM and GL-MCM are scored
per OOD set. On a CPU the fast path decodes with libjpeg (as PIL does), so the difference measured there is the
resize's; on a CUDA device nvJPEG decodes and its IDCT adds its own difference.

Usage::

    python tests/benchmarks/measure_decode_effect.py [--device cuda] [--min-size 48 --max-size 160]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_jpegs(source, folder: Path, rng, lo: int, hi: int, limit: int | None = None):
    from oodbench.data.sources import FileListSource

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    n = len(source) if limit is None else min(limit, len(source))
    for i in range(n):
        h, w = (int(v) for v in rng.integers(lo, hi + 1, size=2))
        name = f"{i:05d}.jpg"
        source.load(i).resize((w, h), Image.BICUBIC).save(folder / name, quality=90)
        names.append(name)
    return FileListSource(source.name, folder, names, source.labels[:n])


def extract(backbone, source, decode: str, device, batch: int = 128):
    from oodbench.data.decode import make_loader

    chunks = [list(range(i, min(len(source), i + batch))) for i in range(0, len(source), batch)]
    loader = make_loader(source, backbone.preprocess(), decode=decode, device=device, batch_sampler=chunks)
    image, local, pixels = [], [], []
    with torch.inference_mode():
        for x, _idx, bad in loader:
            assert not bad, bad
            x = x.to(device)
            pixels.append(x.cpu())
            out = backbone.compute_features(x, {"image", "local"})
            image.append(out["image"].float().cpu())
            local.append(out["local"].float().cpu())
    return torch.cat(image).numpy(), torch.cat(local).numpy(), torch.cat(pixels)


def measure(device: str = "cpu", min_size: int = 48, max_size: int = 160, seed: int = 0,
            limit: int | None = None) -> dict:
    """Pixels and MCM / GL-MCM scores of ``--decode gpu`` against PIL; ``limit``: at most that many images per split.

    Returns a dict: ``pixels`` (max and mean |difference| in 8-bit levels, share of values differing), ``scores``
    (per score and OOD set: FPR95 and AUROC in % for both paths, the largest per-image score difference), ``seconds``.
    """
    from oodbench.api import _resolved
    from oodbench.backbones import create_backbone
    from oodbench.features.extract import compute_shared
    from oodbench.metrics import auroc, fpr95
    from oodbench.postprocessors.glmcm import glmcm_score
    from oodbench.postprocessors.mcm import mcm_score

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    resolved = _resolved("digits", None, "skip")
    bb = create_backbone("digits_clip", None).to(device)
    std = torch.tensor(bb.preprocess().transforms[-1].std).view(1, 3, 1, 1)
    text = compute_shared(bb, {"text"}, resolved.spec.class_names, resolved.spec.prompt)["text"]
    splits = [s for s in resolved.splits() if str(s.role) in ("id_test", "ood", "Role.ID_TEST", "Role.OOD")]
    t0 = time.perf_counter()
    scores: dict[str, dict[str, dict[str, np.ndarray]]] = {"pil": {}, "gpu": {}}
    diffs = []
    with tempfile.TemporaryDirectory() as tmp:
        for split in splits:
            src = write_jpegs(split.source, Path(tmp) / split.name.replace(" ", "_"), rng, min_size, max_size, limit)
            feats = {d: extract(bb, src, d, device) for d in ("pil", "gpu")}
            diffs.append(((feats["gpu"][2] - feats["pil"][2]) * std * 255).abs())
            for d, (image, local, _) in feats.items():
                scores[d][split.name] = {"mcm": mcm_score(image, text), "glmcm": glmcm_score(image, local, text)}
    levels = torch.cat([x.flatten() for x in diffs])
    id_name = next(s.name for s in splits if "test" in str(s.role).lower())
    rows = []
    for score in ("mcm", "glmcm"):
        for split in splits:
            if split.name == id_name:
                continue
            row = []
            for d in ("pil", "gpu"):
                i, o = scores[d][id_name][score], scores[d][split.name][score]
                row.append((float(fpr95(i, o)) * 100, float(auroc(i, o)) * 100))
            sd = float(np.abs(scores["gpu"][split.name][score] - scores["pil"][split.name][score]).max())
            rows.append({"score": score, "ood": split.name, "fpr95_pil": row[0][0], "fpr95_gpu": row[1][0],
                         "auroc_pil": row[0][1], "auroc_gpu": row[1][1], "max_score_diff": sd})
    return {"device": str(device), "cpu": platform.processor() or platform.machine(), "sizes": [min_size, max_size],
            "limit": limit, "seconds": time.perf_counter() - t0,
            "pixels": {"max_levels": float(levels.max()), "mean_levels": float(levels.mean()),
                       "differing_share": float((levels > 0.5).float().mean())},
            "scores": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-size", type=int, default=48)
    ap.add_argument("--max-size", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    r = measure(args.device, args.min_size, args.max_size, args.seed)
    print(f"# decode effect: digits_clip, digits benchmark as JPEGs of {args.min_size}-{args.max_size} px, "
          f"device {args.device}, {r['cpu']}, {r['seconds']:.0f} s")
    p = r["pixels"]
    print(f"pixels after preprocessing (8-bit levels): max |diff| {p['max_levels']:.2f}, mean {p['mean_levels']:.4f}, "
          f"differing {p['differing_share'] * 100:.1f}% of values")
    print("| score | OOD set | FPR95 pil | FPR95 gpu | AUROC pil | AUROC gpu | max |score diff| |")
    print("|---|---|---|---|---|---|---|")
    for x in r["scores"]:
        print(f"| {x['score']} | {x['ood']} | {x['fpr95_pil']:.2f} | {x['fpr95_gpu']:.2f} | {x['auroc_pil']:.2f} | "
              f"{x['auroc_gpu']:.2f} | {x['max_score_diff']:.2e} |")


if __name__ == "__main__":
    main()
