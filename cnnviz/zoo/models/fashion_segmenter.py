"""``fashion_seg``'s network: a small fully convolutional segmenter of Fashion-MNIST scenes (64 pixels,
11 classes with the background), and its handle. The zoo entry is :mod:`zoo.catalog.fashion_seg`, the
recipe that trains it :mod:`zoo.train.scenes`.

Example:
    >>> import torch
    >>> handle = seg_handle((0.1,), (0.2,), tuple(f"class {i}" for i in range(11)))
    >>> handle.model(torch.zeros(2, 1, CANVAS, CANVAS)).shape
    torch.Size([2, 11, 64, 64])
"""

from __future__ import annotations

import torch
from torch import nn

from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import WEIGHTS_DIR

SEG_NAME = "fashion_seg"
CANVAS = 64


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


def seg_handle(mean: tuple[float, ...], std: tuple[float, ...], classes: tuple[str, ...]) -> ModelHandle:
    """An untrained ``fashion_seg`` with its configuration."""
    config = ModelConfig(input_size=CANVAS, resize_size=CANVAS, mean=mean, std=std, classes=classes,
                         default_layer="features.3", source=f"zoo:{SEG_NAME}", task="segmentation",
                         training_log=str(WEIGHTS_DIR / f"{SEG_NAME}-log.json"))
    return ModelHandle(FashionSegmenter(len(classes)), name=SEG_NAME, config=config)
