"""What a gallery build shows and how big: the models and images, and the sizes and step counts (budget).

``QUICK`` fits two CPU cores in a few minutes, ``FULL`` is meant for a GPU.

Example:
    >>> with_budget(Settings(quick=True), images=1).sizes.images
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_MODELS = ("efficientnet_lite0", "fashion_cnn")
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "hubble")


@dataclass(frozen=True)
class Budget:
    """Sizes and step counts of one gallery mode.

    Attributes:
        images: images per model (image pages).
        attribution: option overrides for attribution methods, applied where a method has the option.
        curve_steps: points on the deletion/insertion curves.
        layers: layers shown per model (feature maps use the first two).
        atlas_images: most images the neuron atlas scans for a dataset model.
        atlas_channels: channels drawn per atlas layer (the most strongly firing).
        atlas_top: patches per channel.
        classes: classes drawn by activation maximization (all when a model has at most 10).
        actmax_steps: activation-maximization steps.
        inversion_steps: feature-inversion steps per layer.
        dream_steps: DeepDream steps per octave.
        attack_steps: PGD steps.
        fooling_steps: the most fooling steps; fooling_classes: classes fooled (all when at most 10).
        style_steps: style-transfer steps; style_size: its image side.
        methods: the attribution methods shown (None: every registered one).
        concepts: channels in the concepts panel of each image (CRP at the model's default layer).
        concept_steps: optimizer steps of the pictures of what those channels look for (one optimization per
            model, for every channel the panels name).
    """

    images: int
    attribution: dict[str, Any]
    curve_steps: int
    layers: int
    atlas_images: int
    atlas_channels: int
    atlas_top: int
    classes: int
    actmax_steps: int
    inversion_steps: int
    dream_steps: int
    attack_steps: int
    fooling_steps: int
    fooling_classes: int
    style_steps: int
    style_size: int
    methods: tuple[str, ...] | None = None
    concepts: int = 6
    concept_steps: int = 64


# A few of each family, all of which run in seconds per image on two CPU cores (Score-CAM's one forward
# pass per channel, the sampling methods of captum and extremal perturbations' optimization do not).
QUICK_METHODS = ("occlusion", "gradient", "smoothgrad", "integrated_gradients", "guided_backprop", "gradcam",
                 "guided_gradcam", "gradcam_plusplus", "layercam", "eigencam", "ablationcam", "rise",
                 "captum:DeepLift", "captum:GradientShap")


QUICK = Budget(images=3, attribution={"samples": 10, "steps": 16, "window": 48, "stride": 24, "masks": 256},
               curve_steps=16,
               layers=3, atlas_images=2000, atlas_channels=8, atlas_top=5, classes=3, actmax_steps=256,
               inversion_steps=96, dream_steps=10, attack_steps=10, fooling_steps=100, fooling_classes=2,
               style_steps=60, style_size=224, methods=QUICK_METHODS, concept_steps=32)
FULL = Budget(images=6, attribution={}, curve_steps=32, layers=5, atlas_images=10000, atlas_channels=16,
              atlas_top=8, classes=8, actmax_steps=512, inversion_steps=300, dream_steps=10, attack_steps=40,
              fooling_steps=300, fooling_classes=6, style_steps=300, style_size=320, concept_steps=128)


@dataclass
class Settings:
    """What to build.

    Attributes:
        models: zoo names (default: the models that ship, efficientnet_lite0 and fashion_cnn).
        images: image sources for every model (default: scikit-image photos; Fashion-MNIST test
            images for a 28 px gray model when the dataset is installed).
        quick: the quick budget (2 CPU cores) instead of the full one (GPU).
        device: torch device (default: cuda, then mps, then cpu).
        progress: progress bars inside the methods.
        budget: override the budget (tests use tiny ones).
    """

    models: Sequence[str] = DEFAULT_MODELS
    images: Sequence[str] | None = None
    quick: bool = False
    device: str | None = None
    progress: bool = False
    budget: Budget | None = None

    @property
    def sizes(self) -> Budget:
        """The budget in force."""
        return self.budget or (QUICK if self.quick else FULL)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for the manifest."""
        return {"models": list(self.models), "images": None if self.images is None else list(self.images),
                "mode": "quick" if self.quick else "full", "device": self.device}


def with_budget(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with some budget fields changed (tests and benchmarks)."""
    return replace(settings, budget=replace(settings.sizes, **changes))
