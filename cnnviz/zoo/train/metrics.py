"""The held-out scores of the dense models: mean IoU of a segmenter, and the mean average precision of a
detector at one IoU threshold (mAP@0.5 by default), PASCAL VOC style.

For each class, the detections of all images are ranked by score; a detection is a true positive when
its best-overlapping ground-truth box of that class, not yet claimed by a higher-scoring detection, has
IoU of at least ``iou`` with it. The class's AP is the area under its precision-recall curve, the
precision first made non-increasing (all-point interpolation). mAP averages the classes that have
ground truth.

Example:
    >>> import torch
    >>> truth = [torch.tensor([[0., 0., 10., 10.]])]
    >>> found = [torch.tensor([[0., 0., 10., 9., 0.9, 3.], [20., 20., 30., 30., 0.8, 3.]])]
    >>> mean_average_precision(found, truth, [torch.tensor([3])])["map"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.ops import box_iou

from cnnviz.zoo.data.scenes import Scenes
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.models.torchvision_dense import detect


def average_precision(scores: torch.Tensor, hits: torch.Tensor, positives: int) -> float:
    """Area under the interpolated precision-recall curve of detections with ``scores`` that are true
    positives where ``hits``, against ``positives`` ground-truth boxes.

    Example:
        >>> average_precision(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True]), 2)
        0.8333333333333333
    """
    order = torch.argsort(scores, descending=True, stable=True)
    ranked = hits[order]
    true_pos = ranked.double().cumsum(0)
    false_pos = (~ranked).double().cumsum(0)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), true_pos / positives])
    precision = torch.cat([torch.ones(1, dtype=torch.float64), true_pos / (true_pos + false_pos).clamp(min=1)])
    envelope = precision.flip(0).cummax(0).values.flip(0)  # best precision at this recall or beyond
    return float(((recall[1:] - recall[:-1]) * envelope[1:]).sum())


def mean_average_precision(detections: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor],
                           labels: Sequence[torch.Tensor], *, iou: float = 0.5) -> dict[str, Any]:
    """mAP of ``detections`` (per image ``(n, 6)`` rows ``x0, y0, x1, y1, score, label`` as
    :func:`zoo.models.pack_detections` writes them; label -1 is padding) against the ground truth
    ``boxes`` (per image ``(m, 4)``) and ``labels`` (per image ``(m,)``).

    Returns:
        ``{"map": mean AP, "ap": {class index: AP}}`` over the classes with ground truth.
    """
    per_class: dict[int, float] = {}
    classes = sorted({int(c) for image_labels in labels for c in image_labels.tolist()})
    for category in classes:
        scores: list[float] = []
        hits: list[bool] = []
        positives = 0
        for found, truth, truth_labels in zip(detections, boxes, labels):
            truth = truth[truth_labels == category].float()
            positives += truth.shape[0]
            mine = found[found[:, 5] == category].detach().float()
            mine = mine[torch.argsort(mine[:, 4], descending=True, stable=True)]
            claimed = torch.zeros(truth.shape[0], dtype=torch.bool)
            overlaps = box_iou(mine[:, :4], truth) if truth.shape[0] else None
            for row in range(mine.shape[0]):
                hit = False
                if overlaps is not None:
                    free = overlaps[row].masked_fill(claimed, -1.0)
                    best = int(free.argmax())
                    if free[best] >= iou:
                        claimed[best] = hit = True
                scores.append(float(mine[row, 4]))
                hits.append(hit)
        per_class[category] = average_precision(torch.tensor(scores), torch.tensor(hits, dtype=torch.bool),
                                                positives)
    mean = sum(per_class.values()) / len(per_class) if per_class else 0.0
    return {"map": mean, "ap": per_class}


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


def detection_accuracy(handle: ModelHandle, scenes: Scenes) -> dict[str, Any]:
    """mAP@0.5 of ``handle`` on ``scenes`` and the AP of each class present, by name."""
    scores = mean_average_precision(detect(handle, scenes.images), scenes.boxes, scenes.labels)
    return {"map50": scores["map"], "ap": {scenes.classes[c]: round(ap, 4) for c, ap in scores["ap"].items()}}
