"""The training loss of a torchvision detector (``fashion_det``'s recipe), for :func:`zoo.train.loop.train`, and
the detection labels it trains on."""

from __future__ import annotations

import torch

from cnnviz.zoo.core.guard import preserve
from cnnviz.zoo.data.datasets import TensorData
from cnnviz.zoo.data.scenes import Scenes
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.models.torchvision_dense import detect
from cnnviz.zoo.train.loop import Objective, TrainConfig
from cnnviz.zoo.train.metrics import mean_average_precision


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


class DetectionObjective(Objective):
    """A torchvision detector's own training loss (in train mode it takes targets and answers its loss
    terms), summed; validation reports that loss and the mAP@0.5 as the accuracy."""

    def step(self, handle: ModelHandle, images: torch.Tensor, labels: torch.Tensor,
             config: TrainConfig) -> tuple[torch.Tensor, int, int]:
        losses = handle.model((images - handle.mean) / handle.std, detector_targets(labels))
        return sum(losses.values()), 0, 0

    def validate(self, handle: ModelHandle, data: TensorData, config: TrainConfig,
                 amp: bool) -> tuple[float, float | None]:
        total, images = 0.0, data.images.float() / 255.0
        with preserve(handle.model), torch.no_grad():
            handle.model.train()  # the loss needs train mode; group norm keeps no statistics to disturb
            for start in range(0, len(data), 100):
                batch = slice(start, start + 100)
                losses = handle.model((images[batch] - handle.mean) / handle.std, detector_targets(data.labels[batch]))
                total += float(sum(losses.values())) * images[batch].shape[0]
        found = detect(handle, images)
        truth = detector_targets(data.labels.cpu())  # the detections come back on the CPU
        accuracy = mean_average_precision(found, [t["boxes"] for t in truth], [t["labels"] for t in truth])
        return total / len(data), accuracy["map"]
