"""Targets for dense outputs: a class over a region of a segmentation, a box of a detector.

They are score functions on the model output (see :func:`interpret.core.targets.is_score_fn`), so
every method that takes a callable target takes them: CAMs, gradients, occlusion, RISE, ... A
segmentation target reads ``(B, K, H, W)`` per-pixel class scores; a detection target reads the
``(B, N, 6)`` packed detections of :func:`zoo.dense.pack_detections`. One target explains the same
region or box in every image of the batch (masked copies of one image included), so explain one
image per call when each image has its own region.

Build them with :func:`region_target` and :func:`detection_target`, which check the class, the box and
the region against the model and the image, and fix "where the model predicts the class" or "the
n-th detection" on the clean image, once.

Example:
    >>> import torch
    >>> scores = torch.zeros(1, 3, 4, 4); scores[0, 2, :2, :2] = 1.0
    >>> mask = torch.zeros(4, 4, dtype=torch.bool); mask[:2] = True
    >>> RegionScore(2, mask)(scores)
    tensor([4.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torchvision.ops import box_iou

from cnnviz.interpret.core.targets import class_index
from cnnviz.zoo.models import unpack_detections
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

BoxRule = Literal["iou+score", "iou*score", "score"]
BOX_RULES = ("iou+score", "iou*score", "score")
Box = Sequence[float]


class RegionScore:
    """The score of class ``category`` summed over the pixels of ``mask``, per image (pytorch-grad-cam's
    ``SemanticSegmentationTarget``).

    Args:
        category: the class index.
        mask: ``(H, W)`` region, boolean or weights, at the output's size.
    """

    def __init__(self, category: int, mask: torch.Tensor) -> None:
        self.category = int(category)
        self.mask = mask.float()

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.dim() != 4:
            raise CnnvizError(f"a region target needs per-pixel class scores (B, K, H, W) from a segmentation "
                              f"model; this model gives shape {tuple(output.shape)}: give a class index or name")
        if not 0 <= self.category < output.shape[1]:
            raise CnnvizError(f"class {self.category} is out of range: the model has classes 0..{output.shape[1] - 1}")
        if tuple(self.mask.shape) != tuple(output.shape[-2:]):
            raise CnnvizError(f"the region is {tuple(self.mask.shape)} pixels but the model's output is "
                              f"{tuple(output.shape[-2:])}: give the region at the image's size")
        return (output[:, self.category] * self.mask.to(output.device, output.dtype)).sum(dim=(1, 2))


class BoxScore:
    """How well a detector still finds ``box`` of class ``label``, per image.

    Each image's detections are matched to the box by IoU; the best match counts when its IoU is
    above ``iou_threshold`` and its label is ``label`` (else the score is 0). ``rule`` says what it scores:
    ``iou+score`` (pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``), ``iou*score``, or ``score``, the
    class score alone. ``same_label`` matches among the detections of ``label`` only: a detector with
    class-agnostic boxes (FCOS, RetinaNet) answers one box with several labels, and the best overlap
    would otherwise be whichever label scores highest there.

    Args:
        box: ``(x0, y0, x1, y1)`` in input pixels.
        label: the class index.
    """

    def __init__(self, box: Box | torch.Tensor, label: int, *, rule: BoxRule = "iou+score",
                 iou_threshold: float = 0.5, same_label: bool = False) -> None:
        if rule not in BOX_RULES:
            raise CnnvizError(f"unknown box rule {rule!r}: choose from {', '.join(BOX_RULES)}")
        self.box = torch.as_tensor(box, dtype=torch.float32).detach().flatten()
        self.label = int(label)
        self.rule = rule
        self.iou_threshold = float(iou_threshold)
        self.same_label = bool(same_label)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.dim() != 3 or output.shape[-1] != 6:
            raise CnnvizError(f"a box target needs a detector's detections (B, N, 6); this model gives shape "
                              f"{tuple(output.shape)}: give a class index or name")
        if output.shape[1] == 0:
            return output.sum(dim=(1, 2))  # no detections anywhere: 0, still on the graph
        boxes, scores, labels = output[..., :4], output[..., 4], output[..., 5]
        ious = box_iou(self.box.to(output.device, output.dtype)[None], boxes.flatten(0, 1)).view(labels.shape)
        eligible = labels == self.label if self.same_label else labels >= 0
        ious = torch.where(eligible, ious, torch.full_like(ious, -1.0))  # padding never matches
        best = ious.argmax(dim=1, keepdim=True)
        iou, score, found = ious.gather(1, best)[:, 0], scores.gather(1, best)[:, 0], labels.gather(1, best)[:, 0]
        value = iou + score if self.rule == "iou+score" else iou * score if self.rule == "iou*score" else score
        matched = (iou > self.iou_threshold) & (found == self.label)
        return torch.where(matched, value, value * 0.0)


def explained_caption(explained: RegionScore | BoxScore, class_name: Callable[[int], str] = str) -> str:
    """What a dense target explains, in a few words: ``"Sneaker over 210 px"``, ``"box [3, 4, 30, 28] of Bag"``.

    Example:
        >>> explained_caption(RegionScore(2, torch.ones(3, 4)))
        '2 over 12 px'
    """
    mask = getattr(explained, "mask", None)
    if mask is not None:
        return f"{class_name(explained.category)} over {int((mask > 0).sum())} px"
    return f"box {[round(v) for v in explained.box.tolist()]} of {class_name(explained.label)}"


def region_target(handle: ModelHandle, images: torch.Tensor, category: int | str, *,
                  region: Box | None = None, mask: torch.Tensor | None = None) -> RegionScore:
    """A segmentation target: ``category`` over a box ``region``, a ``mask``, or (neither given) every
    pixel where the model predicts ``category`` on the first image.

    Raises:
        CnnvizError: an unknown class, a box outside the image, a region with no pixels.

    Example:
        >>> import torch
        >>> from cnnviz import zoo
        >>> _ = torch.manual_seed(0)
        >>> seg = zoo.load("torchvision:lraspp_mobilenet_v3_large", weights=None, device="cpu")
        >>> image = torch.rand(1, 3, 64, 64)
        >>> target = region_target(seg, image, "cat", region=(8, 8, 40, 32))
        >>> int(target.mask.sum())
        768
    """
    index = class_index(handle, category, handle.config.num_classes)
    height, width = images.shape[-2:]
    if mask is not None:
        if tuple(mask.shape) != (height, width):
            raise CnnvizError(f"the mask is {tuple(mask.shape)} but the image is {(height, width)}: "
                              "give one value per pixel")
        region_mask = mask.detach().float().cpu()
    elif region is not None:
        x0, y0, x1, y1 = inside_image(region, height, width)
        region_mask = torch.zeros(height, width)
        region_mask[y0:y1, x0:x1] = 1.0
    else:
        with torch.no_grad():
            output = handle(images[:1].to(handle.device))
        if output.dim() != 4:
            raise CnnvizError(f"{handle.name} gives shape {tuple(output.shape)}, not per-pixel class scores: "
                              "a region target needs a segmentation model")
        region_mask = (output[0].argmax(0) == index).float().cpu()
    if not region_mask.any():
        where = "the region" if mask is not None or region is not None else f"the model's prediction of {category!r}"
        raise CnnvizError(f"{where} has no pixels: give a region that covers some of the image")
    return RegionScore(index, region_mask)


def detection_target(handle: ModelHandle, images: torch.Tensor, detection: int | None = None, *,
                     box: Box | None = None, label: int | str | None = None, rule: BoxRule = "iou+score",
                     iou_threshold: float = 0.5, same_label: bool = False) -> BoxScore:
    """A detection target: the ``detection``-th detection (from 0, best first) of the first image, or a
    ``box`` with its ``label``, matched to the detections by IoU (see :class:`BoxScore`).

    Raises:
        CnnvizError: a detection index past the detections, a box outside the image, an unknown class.

    Example:
        >>> import torch
        >>> from cnnviz import zoo
        >>> _ = torch.manual_seed(0)
        >>> det = zoo.load("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, device="cpu",
        ...                model_args={"box_score_thresh": 0.0})
        >>> target = detection_target(det, torch.rand(1, 3, 64, 64), box=(4, 4, 30, 40), label="dog")
        >>> target.label
        18
    """
    if box is not None:
        if label is None:
            raise CnnvizError("a box target needs its class: give label= (--target on the CLI)")
        x0, y0, x1, y1 = inside_image(box, *images.shape[-2:])
        return BoxScore((x0, y0, x1, y1), class_index(handle, label, handle.config.num_classes),
                        rule=rule, iou_threshold=iou_threshold, same_label=same_label)
    if detection is None or detection < 0:
        raise CnnvizError(f"give a detection index from 0 (or a box and its label), got {detection!r}")
    with torch.no_grad():
        output = handle(images[:1].to(handle.device))
    if output.dim() != 3 or output.shape[-1] != 6:
        raise CnnvizError(f"{handle.name} gives shape {tuple(output.shape)}, not detections: "
                          "a detection target needs a detector")
    found = unpack_detections(output[:1])[0]
    if detection >= found.shape[0]:
        raise CnnvizError(f"detection {detection + 1} was asked for, but {handle.name} finds {found.shape[0]} "
                          "on this image: choose one of those (cnnviz predict lists them)")
    row = found[detection]
    return BoxScore(row[:4].cpu(), int(row[5]), rule=rule, iou_threshold=iou_threshold, same_label=same_label)


def dense_target(handle: ModelHandle, images: torch.Tensor, target: int | str | None = None, *,
                 region: Box | None = None, box: int | None = None) -> RegionScore | BoxScore:
    """What to explain on a segmentation model or a detector, as ``cnnviz explain`` and the explorer take it:
    for a detector the ``box``-th detection (from 1, best first; default 1), or the box ``region`` of class
    ``target``; for a segmentation model class ``target`` over the box ``region`` (default: where the model
    predicts it). ``box`` on a segmentation model asks for a detector's output and is refused by it.

    Raises:
        CnnvizError: a segmentation model without a class, and what :func:`region_target` and
            :func:`detection_target` refuse.
    """
    if handle.config.task == "detection" or box is not None:
        if region is not None:
            return detection_target(handle, images, box=region, label=target)
        return detection_target(handle, images, (box or 1) - 1)
    if target is None:
        raise CnnvizError(f"{handle.name} answers per pixel: say which class to explain with --target CLASS "
                          "(and --region x0,y0,x1,y1; default: where the model predicts the class)")
    return region_target(handle, images, target, region=region)


def inside_image(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """``box`` as whole pixels ``(x0, y0, x1, y1)``, checked to lie inside a ``height`` x ``width`` image.

    Example:
        >>> inside_image((0, 2, 10.4, 8), 16, 16)
        (0, 2, 10, 8)
    """
    try:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
    except (TypeError, ValueError):
        raise CnnvizError(f"a box is four numbers x0,y0,x1,y1, got {box!r}") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise CnnvizError(f"the box {x0},{y0},{x1},{y1} is not inside the {width} x {height} image: "
                          f"give 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
    return x0, y0, x1, y1
