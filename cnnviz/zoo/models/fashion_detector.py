"""``fashion_det``'s network: torchvision's FCOS head (anchor-free, one location per cell) over a four-block
convolutional backbone with one stride-8 feature map, sized for 64-pixel Fashion-MNIST scenes, and its
handle, which answers packed detections (:func:`zoo.models.torchvision_dense.pack_detections`), as
torchvision's detectors do here. The zoo entry is :mod:`zoo.catalog.fashion_det`, the recipe that trains it
:mod:`zoo.train.scenes`.

Example:
    >>> import torch
    >>> handle = det_handle((0.1,), (0.2,), tuple(f"class {i}" for i in range(10)))
    >>> handle.eval()(torch.zeros(2, 1, CANVAS, CANVAS)).shape[0], handle.config.task
    (2, 'detection')
"""

from __future__ import annotations

import torch
from torch import nn

from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import WEIGHTS_DIR
from cnnviz.zoo.models.torchvision_dense import pack_detections

DET_NAME = "fashion_det"
CANVAS = 64
WIDTH = 64  # FCOS's head normalizes in groups of 32 channels
STRIDE = 8


class SceneBackbone(nn.Module):
    """Four 3x3 conv blocks with group norm (no running statistics: train and eval differ only in the
    head), down to one stride-8 feature map of ``width`` channels."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout), nn.ReLU())

        self.body = nn.Sequential(block(1, 16, 2), block(16, width, 2), block(width, width),
                                  block(width, width, 2), block(width, width))
        self.out_channels = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def fashion_detector(classes: int = 10, *, score_thresh: float = 0.05, detections: int = 10) -> nn.Module:
    """torchvision's FCOS over :class:`SceneBackbone`: no resizing of 64-pixel inputs, no normalization
    of its own (the handle normalizes), at most ``detections`` boxes above ``score_thresh`` per image."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    return FCOS(SceneBackbone(), classes, min_size=CANVAS, max_size=CANVAS, image_mean=[0.0], image_std=[1.0],
                anchor_generator=AnchorGenerator(((STRIDE,),), ((1.0,),)),
                head=FCOSHead(WIDTH, 1, classes, num_convs=2), score_thresh=score_thresh,
                detections_per_img=detections)


def det_handle(mean: tuple[float, ...], std: tuple[float, ...], classes: tuple[str, ...]) -> ModelHandle:
    """An untrained ``fashion_det`` with its configuration."""
    config = ModelConfig(input_size=CANVAS, resize_size=CANVAS, mean=mean, std=std, classes=classes,
                         default_layer="backbone.body.4", source=f"zoo:{DET_NAME}", task="detection",
                         training_log=str(WEIGHTS_DIR / f"{DET_NAME}-log.json"))
    return ModelHandle(fashion_detector(len(classes)), name=DET_NAME, config=config, output=pack_detections)
