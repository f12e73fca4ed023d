"""``fashion_seg``: a small fully convolutional segmenter of Fashion-MNIST scenes, trained here, shipped.

No segmentation weights can be had offline, so one is trained on :mod:`zoo.scenes` by the same loop
as ``cnnviz train`` (:func:`zoo.training.train`: optimizer, schedule, early stopping, checkpoints), in a
few minutes on a CPU; ``cnnviz train --model fashion_seg`` rebuilds it. Its log (``zoo/weights/fashion_seg-log.json``) holds the recipe, the history and
the mean IoU on held-out scenes pasted from Fashion-MNIST's test split.

Example:
    >>> from cnnviz import zoo
    >>> seg = zoo.load("fashion_seg", device="cpu")
    >>> seg.config.task, seg.classes[8], seg.input_size
    ('segmentation', 'Sneaker', 64)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.config import ModelConfig
from cnnviz.zoo.datasets import TensorData
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.registry import register
from cnnviz.zoo.scene_training import SceneTask, shipped_scene_model, train_scene_model
from cnnviz.zoo.scenes import Scenes

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SEG_NAME = "fashion_seg"
CANVAS = 64
ITEMS = (1, 2)


class FashionSegmenter(nn.Module):
    """Three conv stages (the middle ones strided and dilated for context), a 1x1 classifier per pixel,
    and a bilinear upsampling back to the input size: ``(B, 1, S, S) -> (B, 11, S, S)``."""

    def __init__(self, classes: int = 11, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(1, width), block(width, 2 * width, stride=2),
                                      block(2 * width, 2 * width, dilation=2), block(2 * width, 2 * width, dilation=4))
        self.classifier = nn.Conv2d(2 * width, classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(self.features(images))
        return nn.functional.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)


def scene_data(scenes: Scenes) -> TensorData:
    """Scenes as the training loop's data: uint8 images, per-pixel labels."""
    return TensorData((scenes.images * 255).round().to(torch.uint8), scenes.masks)


def mean_iou(handle: ModelHandle, scenes: Scenes, batch_size: int = 64) -> dict[str, Any]:
    """Mean IoU over the classes present in the truth or the prediction, background included, and
    pixel accuracy, of ``handle`` on ``scenes``."""
    count = len(scenes.mask_classes)
    confusion = torch.zeros(count, count, dtype=torch.long)
    with torch.no_grad():
        for start in range(0, scenes.images.shape[0], batch_size):
            predicted = handle(scenes.images[start:start + batch_size].to(handle.device)).argmax(1).cpu()
            truth = scenes.masks[start:start + batch_size]
            confusion += torch.bincount(truth.flatten() * count + predicted.flatten(),
                                        minlength=count * count).view(count, count)
    hits = confusion.diag().double()
    union = confusion.sum(0) + confusion.sum(1) - confusion.diag()
    present = union > 0
    iou = hits[present] / union[present].double()
    return {"miou": float(iou.mean()), "pixel_accuracy": float(hits.sum() / confusion.sum()),
            "iou": {scenes.mask_classes[i]: round(float(hits[i] / union[i]), 4)
                    for i in range(count) if present[i]}}


def seg_handle(mean: tuple[float, ...], std: tuple[float, ...], classes: tuple[str, ...]) -> ModelHandle:
    """An untrained ``fashion_seg`` with its configuration."""
    config = ModelConfig(input_size=CANVAS, resize_size=CANVAS, mean=mean, std=std, classes=classes,
                         default_layer="features.3", source=f"zoo:{SEG_NAME}", task="segmentation",
                         training_log=str(WEIGHTS_DIR / f"{SEG_NAME}-log.json"))
    return ModelHandle(FashionSegmenter(len(classes)), name=SEG_NAME, config=config)


SEG_TASK = SceneTask(SEG_NAME, CANVAS, ITEMS, classes=lambda scenes: scenes.mask_classes, make_handle=seg_handle,
                     labels=scene_data, score=mean_iou, objective=None,
                     defaults={"train_scenes": 1200, "val_scenes": 100, "test_scenes": 200, "epochs": 4})


def train_fashion_seg(out: str | Path, **options: Any) -> dict[str, Any]:
    """Train ``fashion_seg`` by the shipped recipe and write ``OUT/fashion_seg.pt`` and its log (options: see
    :func:`zoo.scene_training.train_scene_model`)."""
    return train_scene_model(SEG_TASK, out, **options)


@register(SEG_NAME, "small fully convolutional segmenter of Fashion-MNIST scenes, 64px gray, 11 classes (ships here)",
          lambda: WEIGHTS_DIR / f"{SEG_NAME}.pt")
def build_fashion_seg(weights: str | Path | None = "pretrained") -> ModelHandle:
    """The shipped Fashion-MNIST scene segmenter (or its architecture with other or random weights)."""
    return shipped_scene_model(SEG_TASK, WEIGHTS_DIR, weights)
