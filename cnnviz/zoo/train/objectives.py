"""The training loss of a torchvision detector (``fashion_det``'s recipe), for :func:`zoo.training.train`."""

from __future__ import annotations

import torch

from cnnviz.zoo.datasets import TensorData
from cnnviz.zoo.detection_map import mean_average_precision
from cnnviz.zoo.fashion_det import detect, detector_targets
from cnnviz.zoo.guard import preserve
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.training import Objective, TrainConfig


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
