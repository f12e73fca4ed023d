"""The 1000 ImageNet class names, as torchvision ships them (offline)."""

from __future__ import annotations

from torchvision.models import ResNet18_Weights

IMAGENET_CLASSES: list[str] = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
