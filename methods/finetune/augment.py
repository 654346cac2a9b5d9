"""Training-time augmentation of the fine-tuning methods, built from the backbone's own eval preprocessing.

Original code: X1AOX1A/SeTAR ``src/svd_ood/svd_ood/model_hub.py`` (train transforms, spec §10.2 / §9.1):

* CLIP: ``RandomResizedCrop(size, scale=(0.9, 1), bicubic)`` + ``RandomHorizontalFlip`` + CLIP normalisation;
* Swin (timm classifiers): ``RandomResizedCrop(size, scale=(0.08, 1), bicubic)`` + flip +
  ``ColorJitter(0.4, 0.4, 0.4)`` (factors 0.6 - 1.4) + ImageNet normalisation.

LoCoOp (CoOp's Dassl defaults): ``RandomResizedCrop(size, scale=(0.08, 1), bicubic)`` + flip + normalisation.
Randomness comes from torch's global generator, which the trainer seeds (images are loaded in the main process).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable


@dataclass(frozen=True)
class Augment:
    """Random-resized-crop scale range, horizontal flip, colour-jitter strength (0 = none)."""

    scale: tuple[float, float] = (0.9, 1.0)
    hflip: bool = True
    color_jitter: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


CLIP_AUGMENT = Augment((0.9, 1.0), True, 0.0)
CLASSIFIER_AUGMENT = Augment((0.08, 1.0), True, 0.4)
LOCOOP_AUGMENT = Augment((0.08, 1.0), True, 0.0)


def image_size(backbone) -> int:
    """The square input size the backbone's eval transform produces."""
    cfg = backbone.preprocess_config()
    if "crop" in cfg:
        return int(cfg["crop"])
    return int(cfg["input_size"][-1])


def train_transform(backbone, augment: Augment) -> Callable:
    """PIL image -> augmented, normalised float tensor ``[3, S, S]`` for ``backbone``."""
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    cfg = backbone.preprocess_config()
    size = image_size(backbone)
    steps: list = [_to_rgb,
                   transforms.RandomResizedCrop(size, scale=tuple(augment.scale),
                                                interpolation=InterpolationMode.BICUBIC)]
    if augment.hflip:
        steps.append(transforms.RandomHorizontalFlip())
    if augment.color_jitter:
        j = augment.color_jitter
        steps.append(transforms.ColorJitter(brightness=j, contrast=j, saturation=j))
    steps += [transforms.ToTensor(), transforms.Normalize(cfg["mean"], cfg["std"])]
    return transforms.Compose(steps)


def _to_rgb(img):
    return img.convert("RGB") if hasattr(img, "convert") else img
