"""``fashion_det``: a small detector of Fashion-MNIST scenes, trained here, shipped.

No detection weights can be had offline, so one is trained on :mod:`zoo.scenes`: torchvision's FCOS
head (anchor-free, one location per cell) over a four-block convolutional backbone with one stride-8
feature map, sized for 64-pixel canvases. It is trained by the same loop as ``cnnviz train``
(:func:`zoo.training.train`) with the detector's own loss (:class:`zoo.detection_objective.DetectionObjective`), in a few minutes
on a CPU; ``cnnviz train --model fashion_det`` rebuilds it. Its log (``zoo/weights/fashion_det-log.json``) holds the recipe, the history and the mAP@0.5 on
held-out scenes pasted from Fashion-MNIST's test split. Its handle answers packed detections
(:func:`zoo.dense.pack_detections`), as torchvision's detectors do here.

Example:
    >>> from cnnviz import zoo
    >>> det = zoo.load("fashion_det", device="cpu")
    >>> det.config.task, det.classes[7], det.input_size
    ('detection', 'Sneaker', 64)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnviz.zoo.config import ModelConfig
from cnnviz.zoo.datasets import TensorData
from cnnviz.zoo.dense import pack_detections
from cnnviz.zoo.detection_map import mean_average_precision
from cnnviz.zoo.guard import preserve
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.registry import register
from cnnviz.zoo.scene_training import SceneTask, shipped_scene_model, train_scene_model
from cnnviz.zoo.scenes import Scenes

if TYPE_CHECKING:
    from cnnviz.zoo.training import Objective

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DET_NAME = "fashion_det"
CANVAS = 64
ITEMS = (1, 3)
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


def box_labels(scenes: Scenes) -> torch.Tensor:
    """The scenes' boxes and labels as one ``(N, K, 5)`` tensor, rows ``x0, y0, x1, y1, label``, padded with
    label -1 (the training loop batches labels by indexing one tensor)."""
    most = max(len(labels) for labels in scenes.labels)
    packed = torch.zeros(len(scenes.labels), most, 5)
    packed[..., 4] = -1
    for row, (boxes, labels) in enumerate(zip(scenes.boxes, scenes.labels)):
        packed[row, :len(labels), :4] = boxes
        packed[row, :len(labels), 4] = labels.float()
    return packed


def detector_targets(labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """:func:`box_labels` rows back as torchvision's per-image ``{"boxes", "labels"}`` targets."""
    return [{"boxes": rows[rows[:, 4] >= 0, :4], "labels": rows[rows[:, 4] >= 0, 4].long()} for rows in labels]


def detect(handle: ModelHandle, images: torch.Tensor, batch_size: int = 100) -> list[torch.Tensor]:
    """Each image's detections (``(n, 6)`` rows of :func:`zoo.dense.pack_detections`, padding dropped), in
    eval mode, the model's mode left as found."""
    found = []
    with preserve(handle.model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            packed = handle(images[start:start + batch_size].to(handle.device)).cpu()
            found.extend(rows[rows[:, 5] >= 0] for rows in packed)
    return found


def detection_accuracy(handle: ModelHandle, scenes: Scenes) -> dict[str, Any]:
    """mAP@0.5 of ``handle`` on ``scenes`` and the AP of each class present, by name."""
    scores = mean_average_precision(detect(handle, scenes.images), scenes.boxes, scenes.labels)
    return {"map50": scores["map"], "ap": {scenes.classes[c]: round(ap, 4) for c, ap in scores["ap"].items()}}


def scene_data(scenes: Scenes) -> TensorData:
    """Scenes as the training loop's data: uint8 images, :func:`box_labels`."""
    return TensorData((scenes.images * 255).round().to(torch.uint8), box_labels(scenes))


def detection_objective() -> Objective:
    """The detector's own training loss (:class:`zoo.detection_objective.DetectionObjective`), made when a
    model trains, so that ``import zoo`` does not load the training loop."""
    from cnnviz.zoo.detection_objective import DetectionObjective

    return DetectionObjective()


def det_handle(mean: tuple[float, ...], std: tuple[float, ...], classes: tuple[str, ...]) -> ModelHandle:
    """An untrained ``fashion_det`` with its configuration."""
    config = ModelConfig(input_size=CANVAS, resize_size=CANVAS, mean=mean, std=std, classes=classes,
                         default_layer="backbone.body.4", source=f"zoo:{DET_NAME}", task="detection",
                         training_log=str(WEIGHTS_DIR / f"{DET_NAME}-log.json"))
    return ModelHandle(fashion_detector(len(classes)), name=DET_NAME, config=config, output=pack_detections)


DET_TASK = SceneTask(DET_NAME, CANVAS, ITEMS, classes=lambda scenes: scenes.classes, make_handle=det_handle,
                     labels=scene_data, score=detection_accuracy, objective=detection_objective,
                     defaults={"train_scenes": 4000, "val_scenes": 200, "test_scenes": 500, "epochs": 10})


def train_fashion_det(out: str | Path, **options: Any) -> dict[str, Any]:
    """Train ``fashion_det`` by the shipped recipe and write ``OUT/fashion_det.pt`` and its log (options: see
    :func:`zoo.scene_training.train_scene_model`)."""
    return train_scene_model(DET_TASK, out, **options)


@register(DET_NAME, "small detector of Fashion-MNIST scenes (FCOS head), 64px gray, 10 classes (ships here)",
          lambda: WEIGHTS_DIR / f"{DET_NAME}.pt")
def build_fashion_det(weights: str | Path | None = "pretrained") -> ModelHandle:
    """The shipped Fashion-MNIST scene detector (or its architecture with other or random weights)."""
    return shipped_scene_model(DET_TASK, WEIGHTS_DIR, weights)
